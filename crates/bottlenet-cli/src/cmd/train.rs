//! `bottlenet train`: run one experiment file (paper §2.2 / §3.3) into an output folder.

use anyhow::{Context, Result};
use bottlenet_model::DeviceChoice;
use bottlenet_train::{ExperimentConfig, RunOptions, train};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Experiment file (TOML), e.g. configs/fashion-rb1-aware.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set train.epochs=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Dataset path; default: the config's data.path, else Debian's full Fashion-MNIST, else the embedded subset.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (checkpoints, model, result.json, bundle/); default runs/<experiment name>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the latest checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs (checkpointed); continue later with --resume.
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    /// Print the result as one JSON object (and no progress bars).
    #[arg(long)]
    pub json: bool,
    /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let config = ExperimentConfig::load(&args.config, &args.overrides)?;
    let (data, source) = super::open_experiment_data(args.data.as_deref(), &config.data)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
    if !args.json {
        eprintln!("data: {source} ({} train / {} test images); output: {}", data.train.len(), data.test.len(), out.display());
    }
    let result = train(&config, &data, &out, &RunOptions { resume: args.resume, quiet: args.json, stop_after_epochs: args.stop_after_epochs, device: super::device_ready(args.device)? })
        .with_context(|| format!("training {}", config.name))?;
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        for note in &result.notes {
            eprintln!("note: {note}");
        }
        let e = &result.eval;
        println!(
            "{}: top-1 {:.2}% on {} test images ({}), mean frame {:.1} B, p95 {:.0} B, {:.0} s",
            result.name, 100.0 * e.accuracy, e.images, e.codec, e.mean_bytes, e.p95_bytes, result.seconds
        );
        if let Some(bundle) = &result.bundle {
            println!("bundle: {}", bundle.display());
        }
    }
    Ok(())
}
