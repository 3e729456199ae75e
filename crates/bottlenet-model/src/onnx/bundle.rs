//! A model bundle's halves and full network as ONNX models, under the file names that mirror
//! the bundle's own layout:
//!
//! ```text
//! mobile/RB1.onnx   image → features   (phone: head + reduction, before the quantizer)
//! cloud/RB1.onnx    features → logits  (server: restoration + tail, after dequantization)
//! full.onnx         image → logits     (the bundle's unsplit network: mobile-/cloud-only)
//! ```

use super::export::{export_cloud, export_full, export_mobile};
use super::model::OnnxModel;
use crate::bundle::{Bundle, Manifest};
use crate::error::{Error, Result};
use burn::tensor::Device;
use std::path::PathBuf;

/// One model of [`export_bundle`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedModel {
    /// `mobile`, `cloud` or `full`.
    pub half: &'static str,
    /// `RBj`, or `None` for the full network.
    pub split: Option<String>,
    /// Where it belongs, relative to the output folder.
    pub file: PathBuf,
    pub model: OnnxModel,
}

/// What [`export_bundle`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleExport {
    pub models: Vec<ExportedModel>,
    /// False when the bundle holds no unsplit network (`bottlenet model add-full` adds one).
    pub has_full: bool,
}

/// Records what a runtime needs to feed a model and read its answer: the input normalisation,
/// the image-folder resize and the class names.
fn add_bundle_metadata(model: &mut OnnxModel, manifest: &Manifest) {
    let join = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    model.set_metadata("bottlenet.normalization.mean", &join(&manifest.normalization.mean));
    model.set_metadata("bottlenet.normalization.std", &join(&manifest.normalization.std));
    if let Some(resize) = manifest.resize {
        model.set_metadata("bottlenet.resize", &resize.to_string());
    }
    if !manifest.class_names.is_empty() {
        // A list of strings always serialises.
        let names = serde_json::to_string(&manifest.class_names).unwrap_or_default();
        model.set_metadata("bottlenet.class_names", &names);
    }
}

/// Where `bottlenet export` puts a graph, relative to its output folder: `mobile/RBj.onnx`,
/// `cloud/RBj.onnx` for a split's halves (`split` = `RBj`), `full.onnx` for the unsplit network.
pub fn exported_file(half: &str, split: Option<&str>) -> PathBuf {
    match split {
        Some(split) => PathBuf::from(half).join(format!("{split}.onnx")),
        None => PathBuf::from(format!("{half}.onnx")),
    }
}

/// Both halves of each split in `splits` (every split of the bundle when `None`) and the
/// unsplit network when the bundle has one.
pub fn export_bundle(dir: &std::path::Path, splits: Option<&[usize]>, device: &Device) -> Result<BundleExport> {
    let mobile = Bundle::load_mobile(dir, device)?;
    let cloud = Bundle::load_cloud(dir, device)?;
    let manifest = &mobile.manifest;
    let wanted: Vec<usize> = match splits {
        Some(s) => s.to_vec(),
        None => mobile.splits().collect(),
    };
    let mut models = Vec::new();
    let mut push = |half: &'static str, split: Option<String>, file: PathBuf, mut model: OnnxModel| {
        add_bundle_metadata(&mut model, manifest);
        models.push(ExportedModel { half, split, file, model });
    };
    for j in wanted {
        let (Some(phone), Some(server)) = (mobile.half(j), cloud.half(j)) else {
            let have: Vec<String> = mobile.splits().map(|j| format!("RB{j}")).collect();
            return Err(Error::Bundle { path: dir.to_path_buf(), reason: format!("no split RB{j}; it has {}", have.join(", ")) });
        };
        let name = format!("RB{j}");
        push("mobile", Some(name.clone()), exported_file("mobile", Some(&name)), export_mobile(phone)?);
        push("cloud", Some(name.clone()), exported_file("cloud", Some(&name)), export_cloud(server)?);
    }
    let full = Bundle::load_full(dir, device)?;
    if let Some(net) = &full {
        push("full", None, exported_file("full", None), export_full(net)?);
    }
    Ok(BundleExport { models, has_full: full.is_some() })
}
