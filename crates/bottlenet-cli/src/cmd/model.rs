//! `bottlenet model info`: the split points of a backbone with their feature shapes, raw sizes
//! and head / tail multiply-accumulates (paper Fig. 6), computed from the layer shapes.
//! `bottlenet model add-full`: puts a trained baseline into a bundle as its unsplit network, which
//! the mobile-only and cloud-only paths run (full build only: it reads a training run).

use anyhow::{Context, Result};
use bottlenet_model::{Arch, BackboneConfig, InfoRow, InfoTable, model_info, parse_shape};
use clap::{Args, Subcommand};
use serde::Serialize;
#[cfg(feature = "full")]
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// One row per split point plus the input row: shape, f32 / 8-bit bytes, head / tail MACs.
    Info(InfoArgs),
    /// Add a trained baseline (a `bottlenet train` output folder, mode baseline) to a bundle as
    /// the unsplit network that mobile-only and cloud-only run; the bundle is rewritten atomically.
    #[cfg(feature = "full")]
    AddFull(AddFullArgs),
}

#[cfg(feature = "full")]
#[derive(Debug, Args)]
pub struct AddFullArgs {
    /// Model bundle folder to extend.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Training output folder of the baseline (holds result.json and model.bpk).
    #[arg(long)]
    pub from: PathBuf,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Backbone: resnet18, resnet34, resnet50, resnet101, compact.
    #[arg(long)]
    pub arch: String,
    /// Input shape, CxHxW.
    #[arg(long, default_value = "3x224x224")]
    pub input: String,
    /// Classifier outputs.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// Channel multiplier (compact backbone only; 1 for the torchvision ResNets).
    #[arg(long, default_value_t = 1)]
    pub width: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One `--json` line: the info row with its shape written `CxHxW`, as the table shows it.
#[derive(Debug, Serialize)]
struct InfoLine<'a> {
    split: &'a str,
    module: &'a str,
    shape: String,
    f32_bytes: u64,
    u8_bytes: u64,
    head_macs: u64,
    tail_macs: u64,
}

impl<'a> From<&'a InfoRow> for InfoLine<'a> {
    fn from(r: &'a InfoRow) -> Self {
        Self {
            split: &r.split,
            module: &r.module,
            shape: format!("{}x{}x{}", r.shape[0], r.shape[1], r.shape[2]),
            f32_bytes: r.f32_bytes,
            u8_bytes: r.u8_bytes,
            head_macs: r.head_macs,
            tail_macs: r.tail_macs,
        }
    }
}

pub fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Info(args) => info(args),
        #[cfg(feature = "full")]
        ModelCommand::AddFull(args) => add_full(args),
    }
}

#[cfg(feature = "full")]
fn add_full(args: AddFullArgs) -> Result<()> {
    let device = bottlenet_model::DeviceChoice::Flex.device()?;
    let mut bundle = bottlenet_model::Bundle::load(&args.bundle, &device).with_context(|| format!("loading {}", args.bundle.display()))?;
    let net = bottlenet_train::load_trained(&args.from, &device)?;
    let result = bottlenet_train::search::read_result(&args.from)?;
    bundle.set_full(&net, Some(result.eval.accuracy)).with_context(|| format!("{} cannot be this bundle's full network", args.from.display()))?;
    bundle.save(&args.bundle)?;
    println!("{}: full network from {} (top-1 {:.2}%)", args.bundle.display(), args.from.display(), 100.0 * result.eval.accuracy);
    Ok(())
}

fn info(args: InfoArgs) -> Result<()> {
    let arch: Arch = args.arch.parse()?;
    let input = parse_shape(&args.input).context("bad --input")?;
    let config = BackboneConfig::new(arch, input[0], args.classes).with_width(args.width);
    let rows = model_info(&config, input)?;
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(&InfoLine::from(row))?);
        }
    } else {
        print!("{}", InfoTable(&rows));
    }
    Ok(())
}
