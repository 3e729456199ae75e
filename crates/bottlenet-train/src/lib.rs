//! `bottlenet-train` owns compression-aware training (paper §2.2, §3.3), evaluation with the real
//! codec, and the training phase of the architecture search (Algorithm 1). Experiments are TOML
//! files (`configs/`); every run writes its resolved config, per-epoch checkpoints, the final
//! model, a `result.json` and, for split models, a model bundle.
//!
//! Only the CLI depends on this crate: a server or phone build never links training code.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod search;
pub mod trainer;

pub use config::{ExperimentConfig, OptimizerKind, Schedule, TrainMode};
pub use error::{Error, Result};
pub use evaluate::{EvalReport, evaluate, percentile};
pub use trainer::{RunOptions, TrainResult, learning_rate, load_trained, train};
