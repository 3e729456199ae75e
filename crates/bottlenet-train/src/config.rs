//! Experiment files: one TOML file per experiment under `configs/`, with `--set key=value`
//! overrides, resolved into [`ExperimentConfig`] and saved beside what it produced.

use crate::error::{Error, Result};
use bottlenet_codec::CodecParams;
use bottlenet_model::{Arch, BottleNetConfig, CodecMode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How the bottleneck meets the codec while training (paper §2.2, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainMode {
    /// The unmodified backbone, no bottleneck.
    Baseline,
    /// Codec round trip in the forward pass, straight-through backward.
    Aware,
    /// Identity in place of the codec while training; the codec is inserted only at evaluation.
    Naive,
}

impl TrainMode {
    /// The forward mode used for the optimisation steps.
    pub fn train_codec_mode(self) -> CodecMode {
        match self {
            TrainMode::Baseline => CodecMode::None,
            TrainMode::Aware => CodecMode::Aware,
            TrainMode::Naive => CodecMode::Identity,
        }
    }

    /// The forward mode used for evaluation: always the real codec when there is a bottleneck.
    pub fn eval_codec_mode(self) -> CodecMode {
        match self {
            TrainMode::Baseline => CodecMode::None,
            TrainMode::Aware | TrainMode::Naive => CodecMode::Aware,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step,
    /// Cosine from `lr` to 0 over the run.
    Cosine,
}

/// `[model]`: backbone and where the bottleneck goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub arch: Arch,
    #[serde(default = "one")]
    pub width: usize,
    /// Residual block after which the bottleneck sits; absent for the baseline.
    #[serde(default)]
    pub split: Option<usize>,
    #[serde(default = "one")]
    pub c_prime: usize,
    #[serde(default = "one")]
    pub s: usize,
}

/// `[train]`: the optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub mode: TrainMode,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    #[serde(default = "one")]
    pub step_epochs: usize,
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    #[serde(default = "one_u64")]
    pub seed: u64,
    /// Start from these weights: a training output folder of ours (e.g. a trained baseline),
    /// or torchvision weights (`.pth` / `.safetensors`). Scratch when absent.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Train only the bottleneck unit; the backbone keeps its (initial) weights.
    #[serde(default)]
    pub freeze_backbone: bool,
    /// Cap on optimisation steps per epoch (a budget, e.g. for the architecture search).
    #[serde(default)]
    pub steps_per_epoch: Option<usize>,
}

/// `[data]`: where samples come from and how many to use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Dataset path (IDX folder, CIFAR-10 folder or image folder); the default resolution
    /// (Debian's full Fashion-MNIST, else the embedded subset) when absent.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Evaluate on at most this many test images.
    #[serde(default)]
    pub test_limit: Option<usize>,
    /// Image folders: shorter side after resizing, pixels (default: the paper's 256).
    #[serde(default)]
    pub resize: Option<u32>,
    /// Image folders: side of the square crop the network sees (default: the paper's 224).
    /// CIFAR-10 and IDX data keep their native size and ignore both.
    #[serde(default)]
    pub crop: Option<u32>,
}

impl DataSection {
    /// How an image folder is read under this section: the paper's 256→224 unless `resize` /
    /// `crop` say otherwise. Only `crop` given: resize to the crop itself (train at the images'
    /// own size, e.g. 32×32 photos with `crop = 32`).
    pub fn folder_options(&self) -> bottlenet_data::FolderOptions {
        let paper = bottlenet_data::FolderOptions::default();
        let crop = self.crop.unwrap_or(paper.crop);
        let resize = self.resize.unwrap_or(if self.crop.is_some() { crop } else { paper.resize });
        bottlenet_data::FolderOptions { resize, crop, ..paper }
    }
}

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub name: String,
    pub model: ModelSection,
    #[serde(default = "CodecParams::paper")]
    pub codec: CodecParams,
    pub train: TrainSection,
    #[serde(default)]
    pub data: DataSection,
}

fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}
fn default_momentum() -> f64 {
    0.9
}
fn default_gamma() -> f64 {
    0.1
}
fn default_schedule() -> Schedule {
    Schedule::Cosine
}

impl ExperimentConfig {
    /// Reads `path` and applies `overrides` (`train.epochs=3`, `model.split=2`, values in TOML syntax;
    /// a bare word is taken as a string).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading config {}", path.display()), e))?;
        Self::parse(&text, path, overrides)
    }

    /// Parses TOML `text` (named `path` in errors) and applies `overrides`.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        let err = |reason: String| Error::Config { path: path.to_path_buf(), reason };
        let mut value: toml::Value = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
        for assignment in overrides {
            apply_override(&mut value, assignment).map_err(err)?;
        }
        fill_codec_defaults(&mut value);
        let config: ExperimentConfig = value.try_into().map_err(|e: toml::de::Error| err(e.message().to_string()))?;
        config.validate().map_err(err)?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        if t.epochs == 0 || t.batch_size == 0 {
            return Err("train.epochs and train.batch_size must be at least 1".into());
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(format!("train.lr must be a positive number, got {}", t.lr));
        }
        match (t.mode, self.model.split) {
            (TrainMode::Baseline, Some(_)) => Err("mode \"baseline\" trains the unmodified network: remove model.split".into()),
            (TrainMode::Aware | TrainMode::Naive, None) => Err(format!("mode {:?} needs model.split (the residual block after which the bottleneck sits)", t.mode)),
            _ => self.codec.validate().map_err(|e| e.to_string()),
        }
    }

    /// The model configuration for a dataset of `input_shape` and `num_classes`.
    pub fn model_config(&self, input_shape: [usize; 3], num_classes: usize) -> BottleNetConfig {
        let m = &self.model;
        let mut config = BottleNetConfig::new(m.arch, input_shape, num_classes).with_width(m.width).with_codec(self.codec);
        if let Some(j) = m.split {
            config = config.with_split(j, m.c_prime, m.s);
        }
        config
    }

    /// The resolved configuration as TOML (saved beside every result).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not serialise the config: {e}\n"))
    }
}

/// A `[codec]` table may name only some fields: the rest come from the paper's operating point.
fn fill_codec_defaults(root: &mut toml::Value) {
    let Some(table) = root.as_table_mut() else { return };
    let Some(codec) = table.get_mut("codec").and_then(toml::Value::as_table_mut) else { return };
    let paper = CodecParams::paper();
    codec.entry("codec").or_insert_with(|| toml::Value::String(paper.codec.name().into()));
    codec.entry("quality").or_insert_with(|| toml::Value::Integer(i64::from(paper.quality)));
    codec.entry("bits").or_insert_with(|| toml::Value::Integer(i64::from(paper.bits)));
}

/// Sets `key.path=value` in a TOML tree; the value is parsed as TOML, else taken as a string.
fn apply_override(root: &mut toml::Value, assignment: &str) -> std::result::Result<(), String> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("override {assignment:?} is not key=value (e.g. train.epochs=3)"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut parts: Vec<&str> = key.trim().split('.').collect();
    let last = parts.pop().filter(|s| !s.is_empty()).ok_or_else(|| format!("override {assignment:?} has an empty key"))?;
    let mut table = root.as_table_mut().ok_or("config is not a TOML table")?;
    for part in parts {
        table = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("override {assignment:?}: {part} is not a table"))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

impl ExperimentConfig {
    /// The same experiment with another epoch count (the only change `--resume` accepts).
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.train.epochs = epochs;
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
[model]
arch = "compact"
split = 1
c_prime = 1
s = 2
[train]
mode = "aware"
epochs = 2
batch_size = 64
optimizer = "sgd"
lr = 0.05
"#;

    #[test]
    fn overrides_apply_and_validate() {
        let c = ExperimentConfig::parse(BASE, Path::new("t.toml"), &["train.epochs=5".into(), "codec.quality=30".into()]).unwrap();
        assert_eq!(c.train.epochs, 5);
        assert_eq!(c.codec.quality, 30);
        assert_eq!(c.train.schedule, Schedule::Cosine);
        let again = ExperimentConfig::parse(&c.to_toml(), Path::new("r.toml"), &[]).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_and_bad_modes_are_refused() {
        let e = ExperimentConfig::parse(BASE, Path::new("t.toml"), &["train.epoch=5".into()]).unwrap_err();
        assert!(e.to_string().contains("epoch"), "{e}");
        let e = ExperimentConfig::parse(BASE, Path::new("t.toml"), &["train.mode=baseline".into()]).unwrap_err();
        assert!(e.to_string().contains("remove model.split"), "{e}");
    }
}
