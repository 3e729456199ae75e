//! `bottlenet report`: the paper's Tables 4-5 (Markdown, CSV) and the plots, from training
//! results and the two device profiles, written into one folder.

use anyhow::{Context, Result};
use bottlenet_report::{ReportInputs, write_report};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Training results (accuracy and mean bytes per split, cloud-only, mobile-only), JSON.
    #[arg(long)]
    pub results: PathBuf,
    /// The phone's profile: TM_j per candidate (role mobile), JSON.
    #[arg(long)]
    pub mobile_profile: PathBuf,
    /// The server's profile: TC_j per candidate (role cloud), JSON.
    #[arg(long)]
    pub cloud_profile: PathBuf,
    /// The phone's compute power PM, W. Default: the mobile profile's power_w, else 1.3.
    #[arg(long)]
    pub mobile_power_w: Option<f64>,
    /// Allowed accuracy loss against the unmodified network, points.
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Output folder (created if missing; files of the same names are replaced).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let mut inputs = ReportInputs::load(&args.results, &args.mobile_profile, &args.cloud_profile)
        .context("cannot load the report inputs")?;
    if args.mobile_power_w.is_some() {
        inputs.mobile_power_w = args.mobile_power_w;
    }
    if let Some(tolerance) = args.tolerance {
        inputs.tolerance_points = tolerance;
    }
    let files = write_report(&inputs, &args.out)
        .with_context(|| format!("cannot write the report into {}", args.out.display()))?;
    for path in &files.written {
        println!("wrote {}", path.display());
    }
    for skip in &files.skipped {
        println!("skipped {}: {}", skip.item, skip.reason);
    }
    Ok(())
}
