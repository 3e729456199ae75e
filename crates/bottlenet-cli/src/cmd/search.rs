//! `bottlenet search`: the training phase of Algorithm 1 over a grid, shardable across machines,
//! and `bottlenet search merge`: one bundle with each split's chosen configuration.

use anyhow::{Context, Result};
use bottlenet_partition::search::{SearchSpec, Shard};
use bottlenet_model::DeviceChoice;
use bottlenet_train::ExperimentConfig;
use bottlenet_train::search::{merge_search, run_search};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SearchArgs {
    #[command(subcommand)]
    pub merge: Option<SearchCommand>,
    #[command(flatten)]
    pub run: Option<SearchRunArgs>,
}

#[derive(Debug, Args)]
pub struct SearchRunArgs {
    /// Search file (TOML), e.g. configs/search/fashion-compact.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// This machine's shard, `i/N` (0-based); default the whole grid.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// Output folder shared by all shards (records, per-configuration runs).
    #[arg(long)]
    pub out: PathBuf,
    /// Dataset path; default: the base experiment's `[data] path`, else the default resolution.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// No progress bars; print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
}

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Merge every shard's records: per split the fewest bytes within the tolerance, one bundle.
    Merge {
        /// The search's output folder (holds shard-*.jsonl and search.toml).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the bundle holding every chosen split.
        #[arg(long)]
        bundle: PathBuf,
        /// Search file; default OUT/search.toml (written by `bottlenet search`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Dataset path; default: the base experiment's `[data] path`, else the default resolution.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Test images for the cloud-only JPEG-quality sweep.
        #[arg(long, default_value_t = 2000)]
        cloud_only_images: usize,
        /// Allowed accuracy loss, points; default: the search file's tolerance.
        #[arg(long)]
        tolerance: Option<f64>,
        /// Print the merge report as JSON.
        #[arg(long)]
        json: bool,
        /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
        #[arg(long, default_value = "flex")]
        device: DeviceChoice,
        /// Record files to merge (default: every OUT/shard-*.jsonl).
        files: Vec<PathBuf>,
    },
    /// Write the selection phase's results file for an existing bundle (its measured splits,
    /// the baseline, and the honest cloud-only JPEG quality).
    Results {
        #[arg(long)]
        bundle: PathBuf,
        /// Training output folder of the unmodified network.
        #[arg(long)]
        baseline: PathBuf,
        /// Where to write results.json.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2.0)]
        tolerance: f64,
        #[arg(long, default_value_t = 2000)]
        cloud_only_images: usize,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
        #[arg(long, default_value = "flex")]
        device: DeviceChoice,
    },
}

pub fn run(args: SearchArgs) -> Result<()> {
    match (args.merge, args.run) {
        (Some(SearchCommand::Merge { out, bundle, config, data, cloud_only_images, tolerance, json, device, files }), _) => {
            let config = config.unwrap_or_else(|| out.join("search.toml"));
            let mut spec = SearchSpec::load(&config).with_context(|| format!("reading search file {}", config.display()))?;
            if let Some(points) = tolerance {
                if !(points.is_finite() && points >= 0.0) {
                    anyhow::bail!("--tolerance must be a finite number of points, not negative; got {points}");
                }
                spec.tolerance_points = points;
            }
            let base = ExperimentConfig::load(&spec.base, &[])?;
            let (data, _) = super::open_experiment_data(data.as_deref(), &base.data)?;
            let report = merge_search(&spec, &out, &files, &bundle, &data, cloud_only_images, super::device_ready(device)?)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("baseline top-1 {:.2}%, tolerance {} points", report.baseline_accuracy, spec.tolerance_points);
                for r in &report.chosen {
                    println!("  {:<5} c'={} s={} q{} {}: top-1 {:.2}%, mean {:.1} B, p95 {:.0} B", r.split, r.c_prime, r.s, r.quality, r.mode.name(), r.accuracy, r.mean_bytes, r.p95_bytes);
                }
                for split in &report.unmet {
                    println!("  {split:<5} no configuration within the tolerance");
                }
                for point in &report.cloud_only {
                    println!("  cloud-only JPEG q{}: top-1 {:.2}%, {:.1} B", point.quality, point.accuracy, point.mean_bytes);
                }
                if !report.missing.is_empty() {
                    println!("unfinished configurations: {}", report.missing.join(", "));
                }
                for warning in &report.warnings {
                    eprintln!("warning: {warning}");
                }
                println!("bundle: {}\nresults: {}", report.bundle.display(), report.results.display());
            }
            Ok(())
        }
        (Some(SearchCommand::Results { bundle, baseline, out, tolerance, cloud_only_images, data, device }), _) => {
            let manifest = bottlenet_model::Bundle::read_manifest(&bundle)?;
            let (data, _) = super::open_bundle_data(data.as_deref(), &manifest)?;
            let (results, sweep) = bottlenet_train::search::results_from_bundle(&bundle, &baseline, &data, cloud_only_images, tolerance, super::device_ready(device)?)?;
            for point in &sweep {
                println!("cloud-only JPEG q{}: top-1 {:.2}%, {:.1} B", point.quality, point.accuracy, point.mean_bytes);
            }
            results.save(&out)?;
            println!("results: {} (baseline {:.2}%, cloud-only {:.1} B at {:.2}%)", out.display(), results.baseline_accuracy, results.cloud_only.bytes, results.cloud_only.accuracy);
            Ok(())
        }
        (None, Some(run)) => {
            let spec = SearchSpec::load(&run.config).with_context(|| format!("reading search file {}", run.config.display()))?;
            let base = ExperimentConfig::load(&spec.base, &[])?;
            let (data, _) = super::open_experiment_data(run.data.as_deref(), &base.data)?;
            let summary = run_search(&spec, run.shard, &run.out, &data, run.json, super::device_ready(run.device)?)?;
            if run.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "grid {} configurations, {} in shard {}, {} already finished, {} trained now",
                    summary.grid, summary.in_shard, run.shard, summary.already_finished, summary.trained.len()
                );
                for r in &summary.trained {
                    println!("  {}: top-1 {:.2}%, mean {:.1} B ({:.0} s)", r.id, r.accuracy, r.mean_bytes, r.seconds);
                }
            }
            Ok(())
        }
        (None, None) => anyhow::bail!("give --config, --out (and --shard i/N), or the `merge` subcommand; see `bottlenet search --help`"),
    }
}
