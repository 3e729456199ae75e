//! The training crate's error type.

use std::path::PathBuf;

/// Why training, evaluation or a search could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error(transparent)]
    Model(#[from] bottlenet_model::Error),
    #[error(transparent)]
    Data(#[from] bottlenet_data::Error),
    #[error(transparent)]
    Codec(#[from] bottlenet_codec::Error),
    #[error("stopped after {epochs_done} epochs as asked; continue with --resume")]
    Interrupted { epochs_done: usize },
    #[error("training diverged: loss is {loss} at epoch {epoch}, step {step}; lower the learning rate")]
    Diverged { loss: f32, epoch: usize, step: usize },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// Result of every fallible training operation.
pub type Result<T> = std::result::Result<T, Error>;
