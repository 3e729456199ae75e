//! The model crate's one error type: every way a model cannot be built, run, imported or loaded.

use std::path::PathBuf;

/// Why a model could not be built, run, imported, saved or loaded.
///
/// Every variant names what was wrong in one line, so the CLI can print it with `{:#}`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range (zero channels, unknown split, ...).
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A tensor reached a layer with a shape the layer was not built for. Checked before burn
    /// sees it, because burn panics on mismatched shapes.
    #[error("shape mismatch at {at}: expected {expected}, got {got}")]
    Shape { at: String, expected: String, got: String },
    /// A split index outside `1..=blocks` (or `0..=blocks` where the input itself counts).
    #[error("split point {split} does not exist: {arch} has split points {min}..={max}")]
    NoSuchSplit { split: usize, arch: String, min: usize, max: usize },
    /// The feature codec refused a tensor or a frame.
    #[error("feature codec: {0}")]
    Codec(#[from] bottlenet_codec::Error),
    /// A checkpoint does not fit the model: missing, unexpected or mis-shaped tensors.
    #[error("checkpoint {path} does not match the model:\n{details}")]
    WeightMismatch { path: PathBuf, details: String },
    /// A checkpoint could not be read at all.
    #[error("cannot read checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// A model bundle is malformed or its manifest disagrees with its weights.
    #[error("model bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A manifest could not be parsed or written.
    #[error("manifest {path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    /// The requested compute device is not compiled in or not usable.
    #[error("device {0} is not available in this build (enable the cargo feature of the same name)")]
    Device(String),
}

/// Result of every fallible operation in this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    pub(crate) fn shape(at: impl Into<String>, expected: impl std::fmt::Debug, got: impl std::fmt::Debug) -> Self {
        Self::Shape { at: at.into(), expected: format!("{expected:?}"), got: format!("{got:?}") }
    }
}
