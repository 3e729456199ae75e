//! `bottlenet export`: a bundle's phone and server halves, and its full network, as ONNX files
//! (`docs/onnx.md` documents the names, shapes and metadata).

use anyhow::{Context, Result};
use bottlenet_model::DeviceChoice;
use bottlenet_model::onnx::export_bundle;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Model bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Split to export (RBj or j); default: every split in the bundle.
    #[arg(long)]
    pub split: Option<String>,
    /// Output folder: mobile/RBj.onnx, cloud/RBj.onnx and full.onnx are written there.
    #[arg(long)]
    pub out: PathBuf,
    /// One JSON object per file written.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    // The weights are read on the CPU; the ONNX files do not depend on the engine.
    let device = DeviceChoice::Flex.device()?;
    let splits = args.split.as_deref().map(super::eval::parse_split).transpose()?.map(|j| vec![j]);
    let summary = export_bundle(&args.bundle, splits.as_deref(), &args.out, &device)
        .with_context(|| format!("exporting {} to ONNX", args.bundle.display()))?;
    for file in &summary.files {
        let describe = |s: &[bottlenet_model::onnx::TensorSignature]| s.iter().map(|t| t.describe()).collect::<Vec<_>>().join(", ");
        if args.json {
            let value = serde_json::json!({
                "half": file.half,
                "split": file.split,
                "path": file.path,
                "bytes": file.bytes,
                "inputs": file.inputs.iter().map(|t| serde_json::json!({"name": t.name, "shape": t.dims})).collect::<Vec<_>>(),
                "outputs": file.outputs.iter().map(|t| serde_json::json!({"name": t.name, "shape": t.dims})).collect::<Vec<_>>(),
            });
            println!("{value}");
        } else {
            println!("{:<6} {:<4} {} ({} B): {} → {}", file.half, file.split.as_deref().unwrap_or("-"), file.path.display(), file.bytes, describe(&file.inputs), describe(&file.outputs));
        }
    }
    if !summary.has_full {
        eprintln!("note: {} has no full network, so no full.onnx was written (add one with `bottlenet model add-full`)", args.bundle.display());
    }
    Ok(())
}
