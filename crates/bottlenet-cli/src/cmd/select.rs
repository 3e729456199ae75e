//! `bottlenet select`: Algorithm 1's selection step (paper §2.3) over measured profiles and
//! training results: rank every candidate by latency or phone energy on one up-link.

use anyhow::{Context, Result, bail};
use bottlenet_partition::{CandidateCosts, Network, NetworkPreset, Profile, Role, Target, TrainingResults, select};
use bottlenet_report::DEFAULT_MOBILE_POWER_W;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Training results (accuracy and mean bytes per split, cloud-only, mobile-only), JSON.
    #[arg(long)]
    pub results: PathBuf,
    /// The phone's profile: TM_j per candidate (role mobile), JSON.
    #[arg(long)]
    pub mobile_profile: PathBuf,
    /// The server's profile: TC_j per candidate (role cloud), JSON.
    #[arg(long)]
    pub cloud_profile: PathBuf,
    /// Up-link preset of the paper's Table 3: 3g, 4g or wifi. Default 3g unless the up-link is
    /// given with --uplink-mbps, --alpha and --beta.
    #[arg(long, conflicts_with_all = ["uplink_mbps", "alpha", "beta"])]
    pub network: Option<String>,
    /// Up-link throughput t_u, Mbit/s (with --alpha and --beta).
    #[arg(long, requires_all = ["alpha", "beta"])]
    pub uplink_mbps: Option<f64>,
    /// α_u of the up-link power model P_u = α_u·t_u + β, mW per Mbit/s.
    #[arg(long, requires = "uplink_mbps")]
    pub alpha: Option<f64>,
    /// β of the up-link power model, mW.
    #[arg(long, requires = "uplink_mbps")]
    pub beta: Option<f64>,
    /// What to minimise: latency (TM + TU + TC) or energy (TM·PM + TU·PU).
    #[arg(long, default_value = "latency")]
    pub target: String,
    /// The phone's compute power PM, W. Default: the mobile profile's power_w, else 1.3.
    #[arg(long)]
    pub mobile_power_w: Option<f64>,
    /// Allowed accuracy loss against the unmodified network, points (paper: 2).
    #[arg(long, default_value_t = 2.0)]
    pub tolerance: f64,
    /// One JSON object per candidate per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn network(args: &SelectArgs) -> Result<Network> {
    match (&args.network, args.uplink_mbps, args.alpha, args.beta) {
        (Some(name), ..) => Ok(name.parse::<NetworkPreset>()?.network()),
        (None, Some(mbps), Some(alpha), Some(beta)) => Ok(Network::new(mbps, alpha, beta)?),
        (None, None, None, None) => Ok(NetworkPreset::ThreeG.network()),
        _ => bail!("give either --network or all of --uplink-mbps, --alpha and --beta"),
    }
}

pub fn run(args: SelectArgs) -> Result<()> {
    let network = network(&args)?;
    let target: Target = args.target.parse()?;
    let results = TrainingResults::load(&args.results)
        .with_context(|| format!("cannot load results {}", args.results.display()))?;
    let mobile = Profile::load(&args.mobile_profile)
        .with_context(|| format!("cannot load mobile profile {}", args.mobile_profile.display()))?;
    mobile.expect_role(Role::Mobile)?;
    let cloud = Profile::load(&args.cloud_profile)
        .with_context(|| format!("cannot load cloud profile {}", args.cloud_profile.display()))?;
    cloud.expect_role(Role::Cloud)?;
    let power_w = args.mobile_power_w.or(mobile.power_w).unwrap_or(DEFAULT_MOBILE_POWER_W);
    let costs = CandidateCosts::join(&results, &mobile, &cloud)?;
    let selection = select(&costs, &network, target, power_w, results.baseline_accuracy, args.tolerance)?;
    if args.json {
        for row in selection.rows() {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        println!("network: {network}; target: {target}; PM = {power_w} W");
        print!("{}", selection.render_table());
        let chosen = selection.chosen();
        println!(
            "chosen: {} ({target}: latency {:.1} ms, energy {:.1} mJ, {:.0} B, accuracy {:.1} %)",
            chosen.candidate, chosen.latency_ms, chosen.energy_mj, chosen.bytes, chosen.accuracy
        );
    }
    Ok(())
}
