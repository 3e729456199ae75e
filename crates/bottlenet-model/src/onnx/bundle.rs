//! Exporting a model bundle's halves and full network to ONNX files, laid out as the bundle is:
//!
//! ```text
//! out/
//!   mobile/RB1.onnx   image → features   (phone: head + reduction, before the quantizer)
//!   cloud/RB1.onnx    features → logits  (server: restoration + tail, after dequantization)
//!   full.onnx         image → logits     (the bundle's unsplit network: mobile-/cloud-only)
//! ```

use super::export::{export_cloud, export_full, export_mobile};
use super::model::{OnnxModel, TensorSignature};
use crate::bundle::{Bundle, Manifest};
use crate::error::{Error, Result};
use burn::tensor::Device;
use std::fs;
use std::path::{Path, PathBuf};

/// One file written by [`export_bundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    /// `mobile`, `cloud` or `full`.
    pub half: String,
    /// `RBj`, or `None` for the full network.
    pub split: Option<String>,
    pub path: PathBuf,
    pub bytes: usize,
    pub inputs: Vec<TensorSignature>,
    pub outputs: Vec<TensorSignature>,
}

/// What [`export_bundle`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub files: Vec<ExportedFile>,
    /// False when the bundle holds no unsplit network (`bottlenet model add-full` adds one).
    pub has_full: bool,
}

/// Records what a runtime needs to feed the model and interpret it: the input normalisation,
/// the image-folder resize and the class names.
fn add_bundle_metadata(model: &mut OnnxModel, manifest: &Manifest) {
    let join = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    model.set_metadata("bottlenet.normalization.mean", &join(&manifest.normalization.mean));
    model.set_metadata("bottlenet.normalization.std", &join(&manifest.normalization.std));
    if let Some(resize) = manifest.resize {
        model.set_metadata("bottlenet.resize", &resize.to_string());
    }
    if !manifest.class_names.is_empty() {
        // A JSON array of strings cannot fail to serialise.
        let names = serde_json::to_string(&manifest.class_names).unwrap_or_default();
        model.set_metadata("bottlenet.class_names", &names);
    }
}

fn write(mut model: OnnxModel, manifest: &Manifest, path: PathBuf, half: &str, split: Option<String>) -> Result<ExportedFile> {
    add_bundle_metadata(&mut model, manifest);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let bytes = model.save(&path)?;
    Ok(ExportedFile { half: half.into(), split, path, bytes, inputs: model.inputs(), outputs: model.outputs() })
}

/// Writes both halves of each split in `splits` (every split of the bundle when `None`) and the
/// unsplit network, when the bundle has one, under `out`.
pub fn export_bundle(dir: &Path, splits: Option<&[usize]>, out: &Path, device: &Device) -> Result<ExportSummary> {
    let mobile = Bundle::load_mobile(dir, device)?;
    let cloud = Bundle::load_cloud(dir, device)?;
    let manifest = &mobile.manifest;
    let wanted: Vec<usize> = match splits {
        Some(s) => s.to_vec(),
        None => mobile.splits().collect(),
    };
    let mut files = Vec::new();
    for j in wanted {
        let (Some(phone), Some(server)) = (mobile.half(j), cloud.half(j)) else {
            let have: Vec<String> = mobile.splits().map(|j| format!("RB{j}")).collect();
            return Err(Error::Bundle { path: dir.to_path_buf(), reason: format!("no split RB{j}; it has {}", have.join(", ")) });
        };
        let name = format!("RB{j}");
        files.push(write(export_mobile(phone)?, manifest, out.join("mobile").join(format!("{name}.onnx")), "mobile", Some(name.clone()))?);
        files.push(write(export_cloud(server)?, manifest, out.join("cloud").join(format!("{name}.onnx")), "cloud", Some(name))?);
    }
    let full = Bundle::load_full(dir, device)?;
    if let Some(net) = &full {
        files.push(write(export_full(net)?, manifest, out.join("full.onnx"), "full", None)?);
    }
    Ok(ExportSummary { files, has_full: full.is_some() })
}
