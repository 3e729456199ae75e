//! Loading torchvision ResNet checkpoints (`.pth`/`.pt` via burn's PyTorch reader, `.safetensors`)
//! into [`ResNet`]. Parameter names already equal torchvision's keys, so no remapping is needed;
//! burn's `PyTorchToBurnAdapter` renames BatchNorm `weight`/`bias` to `gamma`/`beta` and transposes
//! the `fc` weight.

use crate::error::{Error, Result};
use crate::resnet::ResNet;
use burn::store::{ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use std::path::Path;

/// What to take from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Load `fc` too. Off when fine-tuning a pretrained backbone on other classes: `fc` keeps its
    /// fresh initialisation and the checkpoint's `fc.*` are ignored.
    pub include_fc: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { include_fc: true }
    }
}

/// Checkpoint keys that are bookkeeping, not weights (torchvision's BN step counter).
fn is_bookkeeping(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

fn not_fc(path: &str, _container: &str) -> bool {
    !path.starts_with("fc.")
}

/// Turns burn's apply report into our error when anything failed to line up.
fn check_result(path: &Path, result: &ApplyResult, options: ImportOptions) -> Result<()> {
    let mut problems = Vec::new();
    for error in &result.errors {
        problems.push(format!("  mismatched: {error}"));
    }
    for (name, _) in &result.missing {
        problems.push(format!("  missing from checkpoint: {name}"));
    }
    for name in &result.unused {
        if is_bookkeeping(name) || (!options.include_fc && name.starts_with("fc.")) {
            continue;
        }
        problems.push(format!("  unexpected in checkpoint: {name}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::WeightMismatch { path: path.to_path_buf(), details: problems.join("\n") })
    }
}

fn is_safetensors(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// How many classes a torchvision checkpoint's classifier predicts (the length of `fc.bias`), or
/// `None` when the checkpoint has no `fc`. Reads only the tensor index, not the weights.
pub fn checkpoint_classes(path: &Path) -> Result<Option<usize>> {
    if !path.is_file() {
        return Err(Error::Checkpoint { path: path.to_path_buf(), reason: "no such file".into() });
    }
    let unreadable = |e: &dyn std::fmt::Display| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() };
    if is_safetensors(path) {
        let mut store = SafetensorsStore::from_file(path);
        Ok(store.get_tensor("fc.bias").map_err(|e| unreadable(&e))?.and_then(|bias| bias.shape.first().copied()))
    } else {
        let mut store = PytorchStore::from_file(path);
        Ok(store.get_tensor("fc.bias").map_err(|e| unreadable(&e))?.and_then(|bias| bias.shape.first().copied()))
    }
}

/// Loads a torchvision ResNet checkpoint into `model` (built with the same architecture).
///
/// `.safetensors` files are read with burn's SafeTensors reader, everything else as a PyTorch
/// pickle (`torch.save(model.state_dict(), path)`). Fails, listing every key, when the checkpoint
/// misses a parameter, holds one the model lacks, or holds one of another shape.
pub fn load_torchvision(mut model: ResNet, path: &Path, options: ImportOptions) -> Result<ResNet> {
    if !path.is_file() {
        return Err(Error::Checkpoint { path: path.to_path_buf(), reason: "no such file".into() });
    }
    let result = if is_safetensors(path) {
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .skip_enum_variants(true)
            .allow_partial(true)
            .validate(false);
        if !options.include_fc {
            store = store.with_predicate(not_fc);
        }
        model.load_from(&mut store).map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?
    } else {
        let mut store = PytorchStore::from_file(path).allow_partial(true).validate(false);
        if !options.include_fc {
            store = store.with_predicate(not_fc);
        }
        model.load_from(&mut store).map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?
    };
    check_result(path, &result, options)?;
    Ok(model)
}
