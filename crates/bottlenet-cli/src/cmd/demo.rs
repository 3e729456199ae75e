//! `bottlenet demo`: the whole paper end to end on the embedded default, in one process and on
//! loopback only. With the shipped bundle it
//! 1. measures the cloud-only candidate honestly (the lowest input-JPEG quality within the
//!    accuracy tolerance, on the demo's test images) and profiles both sides on this machine
//!    (Algorithm 1's profiling phase, `TM_j` and `TC_j`);
//! 2. lets Algorithm 1 choose per network preset (3G, 4G, Wi-Fi — paper Table 3);
//! 3. starts the gRPC server on 127.0.0.1 (port chosen by the OS) and runs the test images through
//!    the phone client with its up-link paced to each preset's rate, for mobile-only, cloud-only
//!    and BottleNet at the best split;
//! 4. prints the paper's Table 5 from those runs (latency, phone energy, bytes, accuracy, and where
//!    each millisecond went) beside Algorithm 1's prediction, and writes the report (tables and
//!    plots of `bottlenet report`, plus the measured table and a breakdown plot) to a folder.
//!
//! 5. beside it, Algorithm 1's choice and Table 5 on the paper's own devices (Jetson TX2 phone,
//!    GTX 1080 Ti server, ResNet-50: the profiles in `profiles/` derived from the paper's Tables
//!    1–5), with one line on why this machine and the paper's devices choose differently.
//!
//! Phone energy is computed from the measured times with the paper's power model:
//! `PM·TM + P_u·TU`, `P_u = α·t_u + β` (§3.1, Table 3); nothing here measures power.

use crate::engine::Engine;
use crate::serving::{BundleCloud, BundlePhone, LoopbackServer};
use anyhow::{Context, Result, bail};
use bottlenet_data::{Augment, DataSource, DatasetPair, embedded_subset};
use bottlenet_model::{Bundle, DeviceChoice, FoldBatchNorm};
use bottlenet_partition::{CandidateCosts, CandidateKind, Network, NetworkPreset, Profile, Role, Selection, Target, TrainingResults, select};
use bottlenet_report::{BreakdownBar, NamedNetwork, ReportInputs, Tables, breakdown_png, write_report};
use bottlenet_runtime::{Client, ClientOptions, Image, PhoneHalf, ServerConfig, SplitMode, Summary, SummaryReport, UplinkPacer};
use bottlenet_train::search::{Baseline, honest_cloud_only, results_with_baseline};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Model bundle folder (phone and server halves, and the full network).
    #[arg(long, default_value = "models/fashion-compact")]
    pub bundle: PathBuf,
    /// Test images run per network and setup.
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Network presets, comma-separated (paper Table 3).
    #[arg(long, value_delimiter = ',', default_value = "3g,4g,wifi")]
    pub networks: Vec<NetworkPreset>,
    /// What Algorithm 1 minimises: latency or energy.
    #[arg(long, default_value = "latency")]
    pub target: Target,
    /// The phone's compute power PM, W.
    #[arg(long, default_value_t = bottlenet_report::DEFAULT_MOBILE_POWER_W)]
    pub mobile_power_w: f64,
    /// Allowed accuracy loss against the baseline, points (paper: 2).
    #[arg(long, default_value_t = 2.0)]
    pub tolerance: f64,
    /// Timed runs per candidate in the profiling phase.
    #[arg(long, default_value_t = 30)]
    pub profile_runs: usize,
    /// Output folder for the report, tables, plots and demo.json.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Dataset; default: the embedded Fashion-MNIST subset.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print demo.json to stdout instead of the tables (progress bar hidden).
    #[arg(long)]
    pub json: bool,
    /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
    /// Inference engine: xnnpack (CPU, the default with --device flex where built), tract (CPU,
    /// the default otherwise) or burn (on --device).
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// Folder holding the paper's device profiles (paper-tx2-mobile.json, paper-1080ti-cloud.json,
    /// paper-resnet50-results.json), shown beside the measured table.
    #[arg(long, default_value = "profiles")]
    pub paper_profiles: PathBuf,
}

/// One row of the measured Table 5.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRow {
    pub network: String,
    /// `mobile-only`, `cloud-only` or `BottleNet`.
    pub setup: String,
    /// The path the client used: `mobile-only`, `cloud-only` or `RBj`.
    pub path: String,
    pub images: usize,
    /// Top-1 over the images, percent.
    pub accuracy: f64,
    /// Mean payload bytes sent per image (frame or JPEG file, headers included).
    pub mean_bytes: f64,
    /// Mean phone compute per image, ms.
    pub phone_ms: f64,
    /// Mean upload per image (paced link + loopback round trip less server time), ms.
    pub upload_ms: f64,
    /// Mean server time (queue + decode + tail) per image, ms.
    pub server_ms: f64,
    /// Mean end-to-end latency, ms.
    pub latency_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Phone energy per image from the measured times, mJ.
    pub energy_mj: f64,
    /// Algorithm 1's latency for this candidate from the profiles, ms.
    pub predicted_latency_ms: f64,
    /// Algorithm 1's energy for this candidate, mJ.
    pub predicted_energy_mj: f64,
    /// Within the accuracy tolerance according to the selection's inputs.
    pub eligible: bool,
    /// Algorithm 1 picked this candidate for the network.
    pub chosen: bool,
}

/// Everything the demo measured, as `demo.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub bundle: PathBuf,
    pub data: String,
    pub images: usize,
    pub target: String,
    pub tolerance_points: f64,
    pub mobile_power_w: f64,
    pub baseline_accuracy: f64,
    pub cloud_only_quality: u8,
    /// Algorithm 1's choice per network.
    pub choices: Vec<(String, String)>,
    pub rows: Vec<DemoRow>,
    pub report_dir: PathBuf,
    pub wall_seconds: f64,
    /// The same selection on the paper's own devices and network (ResNet-50, TX2, 1080 Ti).
    pub paper: PaperRegime,
}

/// Algorithm 1 and Table 5 on the paper's devices, and why this machine chooses differently.
#[derive(Debug, Clone, Serialize)]
pub struct PaperRegime {
    /// The profiles' source files.
    pub files: Vec<PathBuf>,
    /// Algorithm 1's choice per network for the demo's target.
    pub choices: Vec<(String, String)>,
    /// Table 5 from the paper's profiles, Markdown.
    pub table5_markdown: String,
    /// Whole network on the phone / whole network on the server, here and in the paper.
    pub phone_to_server_here: f64,
    pub phone_to_server_paper: f64,
    /// One line on why the two selections differ (or agree).
    pub why: String,
}

const PAPER_RESULTS: &str = "paper-resnet50-results.json";
const PAPER_MOBILE: &str = "paper-tx2-mobile.json";
const PAPER_CLOUD: &str = "paper-1080ti-cloud.json";

/// Whole-network time on the phone over whole-network time on the server (mobile-only's `TM`
/// over cloud-only's `TC`): how much slower the phone is than the server.
fn phone_to_server(mobile: &Profile, cloud: &Profile) -> Result<f64> {
    let phone = mobile.get(bottlenet_runtime::MOBILE_ONLY).context("the mobile profile has no mobile-only entry")?.median_ms;
    let server = cloud.get(bottlenet_runtime::CLOUD_ONLY).context("the cloud profile has no cloud-only entry")?.median_ms;
    Ok(phone / server.max(1e-9))
}

/// Algorithm 1 on the paper's own profiles for the demo's networks and target (paper Tables 4–5).
fn paper_regime(args: &DemoArgs, here: (&Profile, &Profile), choices_here: &[(String, String)]) -> Result<PaperRegime> {
    let files: Vec<PathBuf> = [PAPER_RESULTS, PAPER_MOBILE, PAPER_CLOUD].iter().map(|f| args.paper_profiles.join(f)).collect();
    let hint = || format!("the paper's profiles are read from {} (run from the repository root, or pass --paper-profiles DIR)", args.paper_profiles.display());
    let mut inputs = ReportInputs::load(&files[0], &files[1], &files[2]).with_context(hint)?;
    inputs.tolerance_points = args.tolerance;
    inputs.networks = args.networks.iter().map(|&p| NamedNetwork { name: preset_label(p).into(), network: Network::preset(p) }).collect();
    let tables = Tables::compute(&inputs).with_context(hint)?;
    let costs = CandidateCosts::join(&inputs.results, &inputs.mobile, &inputs.cloud)?;
    let power = inputs.mobile_power();
    let baseline = inputs.results.baseline_accuracy;
    let choices: Vec<(String, String)> = args
        .networks
        .iter()
        .map(|&p| Ok((preset_label(p).to_string(), select(&costs, &Network::preset(p), args.target, power, baseline, args.tolerance)?.chosen().candidate.clone())))
        .collect::<Result<_>>()?;
    let phone_to_server_here = phone_to_server(here.0, here.1)?;
    let phone_to_server_paper = phone_to_server(&inputs.mobile, &inputs.cloud)?;
    let why = if choices == choices_here {
        format!(
            "Both choose alike: here the phone runs the whole network {phone_to_server_here:.1}× slower than the server, on the paper's devices {phone_to_server_paper:.1}× slower."
        )
    } else {
        format!(
            "Why they differ: this demo's \"phone\" is the server's own CPU, so the whole network is only {phone_to_server_here:.1}× slower on it than on the server \
             (the paper's TX2 is {phone_to_server_paper:.1}× slower than its 1080 Ti); with so little compute to save, anything sent over a paced up-link costs more than it saves."
        )
    };
    Ok(PaperRegime { files, choices, table5_markdown: tables.table5_markdown(), phone_to_server_here, phone_to_server_paper, why })
}

/// A test image as the runtime's CHW image, with its label.
fn test_image(data: &DatasetPair, index: usize) -> Result<(Image, usize)> {
    let raw = data.test.raw(index, Augment::Eval)?;
    Ok((super::infer::chw(&raw.image)?, raw.label as usize))
}

/// One network's selection and the setups run on it.
type Plan<'a> = (NetworkPreset, &'a Selection, Vec<(&'static str, String)>);

/// The three setups of Table 5 for one network: mobile-only, cloud-only, and the best split
/// (by the target, within the tolerance when any split is; the first split otherwise).
fn setups(selection: &Selection, target: Target) -> Vec<(&'static str, String)> {
    let splits: Vec<_> = selection.rows().iter().filter(|r| matches!(r.kind, CandidateKind::Split { .. })).collect();
    let best = splits
        .iter()
        .filter(|r| r.eligible)
        .min_by(|a, b| a.objective(target).total_cmp(&b.objective(target)))
        .or_else(|| splits.iter().min_by(|a, b| a.objective(target).total_cmp(&b.objective(target))));
    let mut out = vec![("mobile-only", bottlenet_runtime::MOBILE_ONLY.to_string()), ("cloud-only", bottlenet_runtime::CLOUD_ONLY.to_string())];
    if let Some(best) = best {
        out.push(("BottleNet", best.candidate.clone()));
    }
    out
}

fn preset_label(preset: NetworkPreset) -> &'static str {
    match preset {
        NetworkPreset::ThreeG => "3G",
        NetworkPreset::FourG => "4G",
        NetworkPreset::WiFi => "Wi-Fi",
    }
}

/// One run of `images` requests through `client`, after `warmup` unrecorded ones.
async fn run_path(client: &Client, images: &[(Image, usize)], warmup: usize, bar: &indicatif::ProgressBar) -> Result<SummaryReport> {
    for (image, _) in images.iter().cycle().take(warmup) {
        client.infer(image).await?;
    }
    let mut summary = Summary::new();
    for (image, label) in images {
        let answer = client.infer(image).await?;
        if answer.fell_back {
            bail!("the server path failed during the demo and the phone answered alone; see the server's log above");
        }
        summary.record(&answer, Some(*label));
        bar.inc(1);
    }
    Ok(summary.report())
}

pub fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    if args.images == 0 {
        bail!("--images must be at least 1");
    }
    if args.networks.is_empty() {
        bail!("--networks needs at least one of 3g, 4g, wifi");
    }
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let device = super::device_ready(args.device)?.device()?;
    let engine = Engine::resolve(args.engine, args.device)?;
    if !args.bundle.join(bottlenet_model::MANIFEST_FILE).is_file() {
        bail!("no model bundle at {} (run from the repository root, or pass --bundle DIR)", args.bundle.display());
    }
    let manifest = Bundle::read_manifest(&args.bundle)?;
    let (data, source) = match &args.data {
        Some(path) => super::open_bundle_data(Some(path), &manifest)?,
        None => {
            let pair = embedded_subset()?;
            super::check_bundle_data(&pair, &manifest)?;
            (pair, DataSource::Embedded)
        }
    };
    let full = Bundle::load_full(&args.bundle, &device)?.with_context(|| {
        format!("{} has no full network for mobile-only and cloud-only; add one with `bottlenet model add-full --bundle {} --from RUN_DIR`", args.bundle.display(), args.bundle.display())
    })?
    .fold_batch_norms();
    let baseline_accuracy = 100.0
        * manifest
            .full
            .as_ref()
            .and_then(|f| f.accuracy)
            .context("the bundle's full network has no measured accuracy; add it again with `bottlenet model add-full`")?;
    let full = Arc::new(full);
    let n = args.images.min(data.test.len());
    say(format!("data: {source}; {n} test images per run; bundle {} (splits {})", args.bundle.display(), manifest.splits.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(",")));

    // 1. Selection inputs: honest cloud-only on the demo's images, profiles measured here.
    say("measuring the cloud-only candidate (input JPEG quality sweep) and profiling both sides…".into());
    let baseline = Baseline { network: &full, accuracy: baseline_accuracy, origin: format!("full network of {}", args.bundle.display()) };
    let (results, sweep): (TrainingResults, _) = results_with_baseline(&args.bundle, &baseline, &data, n, args.tolerance)?;
    let cloud_quality = honest_cloud_only(&sweep, baseline_accuracy, args.tolerance).map_or(90, |p| p.quality);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let measure = |role| super::profile::Measure { role, runs: args.profile_runs, input_quality: cloud_quality, load: 0, threads, mobile_power_w: Some(args.mobile_power_w), device: args.device, engine, wire_tls: false };
    let mobile_profile = super::profile::measure(&args.bundle, full.clone(), &data, &measure(Role::Mobile))?;
    let cloud_profile = super::profile::measure(&args.bundle, full.clone(), &data, &measure(Role::Cloud))?;
    let costs = CandidateCosts::join(&results, &mobile_profile, &cloud_profile)?;
    let selections: Vec<(NetworkPreset, Selection)> = args
        .networks
        .iter()
        .map(|&p| Ok((p, select(&costs, &Network::preset(p), args.target, args.mobile_power_w, baseline_accuracy, args.tolerance)?)))
        .collect::<Result<_>>()?;

    let choices: Vec<(String, String)> = selections.iter().map(|(p, s)| (preset_label(*p).to_string(), s.chosen().candidate.clone())).collect();
    let paper = paper_regime(&args, (&mobile_profile, &cloud_profile), &choices)?;

    // 2. The server on loopback, every split's tail plus the full network for cloud-only.
    let cloud = Bundle::load_cloud(&args.bundle, &device)?;
    let server_model = BundleCloud::new(cloud, device.clone()).with_network(Some((*full).clone())).with_engine(engine)?;
    let mobile = Bundle::load_mobile(&args.bundle, &device)?;
    let phone: Arc<dyn PhoneHalf> = Arc::new(BundlePhone::new(mobile, device).with_network(Some((*full).clone())).with_engine(engine)?);
    let images: Vec<(Image, usize)> = (0..n).map(|i| test_image(&data, i)).collect::<Result<_>>()?;
    let warmup = 5;
    let plans: Vec<Plan<'_>> = selections.iter().map(|(p, s)| (*p, s, setups(s, args.target))).collect();
    let total: usize = plans.iter().map(|(_, _, s)| s.len() * n).sum();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let rows = runtime.block_on(async {
        // One phone talks to the server at a time: no batching delay.
        let config = ServerConfig { max_batch: 1, max_delay_ms: 0, ..ServerConfig::default() };
        let server = LoopbackServer::start(config, server_model).await.context("starting the demo server")?;
        let url = server.url.clone();
        say(format!("server listening on {url} (loopback); running the phone client…"));
        let bar = super::progress(args.json, total as u64, "demo".into());
        let mut rows = Vec::new();
        for (preset, selection, setups) in &plans {
            let network = Network::preset(*preset);
            for (setup, path) in setups {
                bar.set_message(format!("{} {path}", preset_label(*preset)));
                let mode = match path.as_str() {
                    bottlenet_runtime::MOBILE_ONLY => SplitMode::MobileOnly,
                    bottlenet_runtime::CLOUD_ONLY => SplitMode::CloudOnly,
                    split => SplitMode::Fixed(split.to_string()),
                };
                let mut options = ClientOptions::new(mode);
                options.pacer = Some(Arc::new(UplinkPacer::new(network.uplink_mbps)?));
                options.jpeg_quality = cloud_quality;
                options.top_k = 1;
                let client = Client::connect(&url, phone.clone(), options).await.with_context(|| format!("connecting to {url}"))?;
                let m = run_path(&client, &images, warmup, &bar).await.with_context(|| format!("{} {path}", preset_label(*preset)))?;
                let predicted = selection.get(path).with_context(|| format!("Algorithm 1 has no candidate {path}"))?;
                let (phone_ms, upload_ms) = (m.mean_phone_ms, m.mean_upload_ms);
                rows.push(DemoRow {
                    network: preset_label(*preset).to_string(),
                    setup: (*setup).to_string(),
                    path: path.clone(),
                    images: m.requests,
                    accuracy: 100.0 * m.accuracy.unwrap_or(0.0),
                    mean_bytes: m.mean_bytes,
                    phone_ms,
                    upload_ms,
                    server_ms: m.mean_server_ms,
                    latency_ms: m.mean_ms,
                    p50_ms: m.p50_ms,
                    p95_ms: m.p95_ms,
                    // ms·W = mJ; ms·mW = µJ.
                    energy_mj: phone_ms * args.mobile_power_w + upload_ms * network.uplink_power_mw() / 1e3,
                    predicted_latency_ms: predicted.latency_ms,
                    predicted_energy_mj: predicted.energy_mj,
                    eligible: predicted.eligible,
                    chosen: predicted.chosen,
                });
            }
        }
        bar.finish_and_clear();
        server.stop().await.context("the demo server stopped with an error")?;
        anyhow::Ok(rows)
    })?;

    // 3. The report (the `report` command's tables and plots) and the measured table.
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    results.save(args.out.join("results.json"))?;
    mobile_profile.save(args.out.join("mobile-profile.json"))?;
    cloud_profile.save(args.out.join("cloud-profile.json"))?;
    let mut inputs = ReportInputs::new(results, mobile_profile, cloud_profile);
    inputs.mobile_power_w = Some(args.mobile_power_w);
    inputs.tolerance_points = args.tolerance;
    inputs.feature_sizes = Some(super::report::feature_sizes(manifest.arch, manifest.width, manifest.input_shape, manifest.num_classes)?);
    inputs.networks = args.networks.iter().map(|&p| NamedNetwork { name: preset_label(p).into(), network: Network::preset(p) }).collect();
    let files = write_report(&inputs, &args.out)?;
    let bars: Vec<BreakdownBar> = rows
        .iter()
        .map(|r| BreakdownBar { label: format!("{} {}", r.network, short_path(&r.path)), phone_ms: r.phone_ms, upload_ms: r.upload_ms, server_ms: r.server_ms })
        .collect();
    breakdown_png(&args.out.join("demo_breakdown.png"), (1200, 600), "Where each millisecond went (measured, mean per image)", &bars)?;
    let report = DemoReport {
        bundle: args.bundle.clone(),
        data: source.to_string(),
        images: n,
        target: args.target.to_string(),
        tolerance_points: args.tolerance,
        mobile_power_w: args.mobile_power_w,
        baseline_accuracy,
        cloud_only_quality: cloud_quality,
        choices,
        rows,
        report_dir: args.out.clone(),
        wall_seconds: started.elapsed().as_secs_f64(),
        paper,
    };
    let table = demo_table(&report);
    write_atomic(&args.out.join("demo.md"), &table)?;
    write_atomic(&args.out.join("demo.json"), &serde_json::to_string_pretty(&report)?)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{table}");
        println!("\nreport, tables and plots: {} ({} files, demo_breakdown.png, demo.md, demo.json)", args.out.display(), files.written.len());
        println!("demo finished in {:.0} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn short_path(path: &str) -> &str {
    match path {
        bottlenet_runtime::MOBILE_ONLY => "mobile",
        bottlenet_runtime::CLOUD_ONLY => "cloud",
        split => split,
    }
}

/// Writes `text` to a temporary file beside `path`, then renames it into place.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    bottlenet_train::checkpoint::write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// The measured Table 5 as Markdown: one block per network.
pub fn demo_table(report: &DemoReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Table 5, measured: {} images per row, {} data, target {}, PM = {} W, tolerance {} points (baseline {:.2}%)\n",
        report.images, report.data, report.target, report.mobile_power_w, report.tolerance_points, report.baseline_accuracy
    );
    let _ = writeln!(out, "Cloud-only sends the input as a JPEG at q{} (the lowest quality within the tolerance on these images).", report.cloud_only_quality);
    let _ = writeln!(out, "Energy = PM·phone + P_u·upload from the measured times (paper §3.1, Table 3). Predicted = Algorithm 1 from the profiles.\n");
    let _ = writeln!(
        out,
        "| network | setup | path | latency ms (p50 / p95) | predicted ms | phone ms | upload ms | server ms | energy mJ | predicted mJ | bytes | top-1 % |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &report.rows {
        let mark = match (r.chosen, r.eligible) {
            (true, _) => " ← Algorithm 1",
            (false, false) => " (outside tolerance)",
            _ => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}{mark} | {:.2} ({:.2} / {:.2}) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} |",
            r.network, r.setup, r.path, r.latency_ms, r.p50_ms, r.p95_ms, r.predicted_latency_ms, r.phone_ms, r.upload_ms, r.server_ms, r.energy_mj, r.predicted_energy_mj, r.mean_bytes, r.accuracy
        );
    }
    let _ = writeln!(out);
    for (network, choice) in &report.choices {
        let _ = writeln!(out, "Algorithm 1 on {network}: {choice}");
    }
    let paper = &report.paper;
    let _ = writeln!(
        out,
        "\n# Table 5 on the paper's devices: ResNet-50, Jetson TX2 phone, GTX 1080 Ti server (from {}, not measured here)\n",
        paper.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    out.push_str(&paper.table5_markdown);
    let _ = writeln!(out);
    for ((network, here), (_, there)) in report.choices.iter().zip(&paper.choices) {
        let _ = writeln!(out, "Algorithm 1 ({}) on {network}: {here} on this machine, {there} on the paper's devices", report.target);
    }
    let _ = writeln!(out, "\n{}", paper.why);
    out
}
