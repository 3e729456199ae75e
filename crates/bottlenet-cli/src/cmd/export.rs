//! `bottlenet export`: a bundle's phone and server halves, and its full network, as ONNX files
//! (`docs/onnx.md` documents the names, shapes and metadata).

use anyhow::{Context, Result};
use bottlenet_model::DeviceChoice;
use bottlenet_model::onnx::{OnnxModel, TensorSignature, export_bundle};
use clap::Args;
use std::path::{Path, PathBuf};

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

fn signatures(list: &[TensorSignature]) -> serde_json::Value {
    list.iter().map(|t| serde_json::json!({"name": t.name, "shape": t.dims})).collect()
}

/// Writes `model` to `dir/file` (folders made as needed; a temporary file, then renamed, so a
/// failed write never leaves half a graph under the name); its bytes.
pub(crate) fn write_onnx(dir: &Path, file: &Path, model: &OnnxModel) -> Result<Vec<u8>> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let bytes = model.to_bytes();
    bottlenet_partition::write_atomic(&path, &bytes)?;
    Ok(bytes)
}

pub fn run(args: ExportArgs) -> Result<()> {
    // The weights are read on the CPU; the ONNX files do not depend on the engine.
    let device = DeviceChoice::Flex.device()?;
    let splits = args.split.as_deref().map(super::parse_split).transpose()?.map(|j| vec![j]);
    let export = export_bundle(&args.bundle, splits.as_deref(), &device).with_context(|| format!("exporting {} to ONNX", args.bundle.display()))?;
    for exported in &export.models {
        let path = args.out.join(&exported.file);
        let bytes = write_onnx(&args.out, &exported.file, &exported.model)?;
        let (inputs, outputs) = (exported.model.inputs(), exported.model.outputs());
        if args.json {
            let value = serde_json::json!({
                "half": exported.half, "split": exported.split, "path": path, "bytes": bytes.len(),
                "inputs": signatures(&inputs), "outputs": signatures(&outputs),
            });
            println!("{value}");
        } else {
            let describe = |s: &[TensorSignature]| s.iter().map(TensorSignature::describe).collect::<Vec<_>>().join(", ");
            let split = exported.split.as_deref().unwrap_or("-");
            println!("{:<6} {split:<4} {} ({} B): {} → {}", exported.half, path.display(), bytes.len(), describe(&inputs), describe(&outputs));
        }
    }
    if !export.has_full {
        eprintln!("note: {} has no full network, so no full.onnx was written (add one with `bottlenet model add-full`)", args.bundle.display());
    }
    Ok(())
}
