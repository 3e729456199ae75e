//! Datasets for BottleNet: IDX (MNIST, Fashion-MNIST), CIFAR-10 binary batches, image folders
//! (miniImageNet/ImageNet, paper §3.1: random 224×224 crops, 85/15 split), and the embedded
//! Fashion-MNIST subset (DESIGN §6), all behind the [`Dataset`] trait, plus the seeded, parallel
//! [`Batcher`].
//!
//! This crate must not depend on a deep-learning framework: training, evaluation, profiling and
//! the phone client all read data through it, and the phone client must not link training code.
//! Everything random is a pure function of a seed, so runs are reproducible and resumable.
//!
//! ```no_run
//! use bottlenet_data::{BatchOptions, Batcher, resolve_default};
//!
//! // `--data PATH` if given, else /usr/share/datasets/fashion-mnist, else the embedded subset.
//! let (pair, source) = resolve_default(None)?;
//! for w in &pair.warnings {
//!     eprintln!("skipped {w}");
//! }
//! println!("data: {source}; input {:?}", pair.train.input_shape());
//! let batcher = Batcher::new(pair.train.clone(), BatchOptions::train(128, 42))?;
//! for batch in batcher.epoch(0) {
//!     let batch = batch?; // batch.pixels: N×C×H×W, batch.labels: N
//! }
//! # Ok::<(), bottlenet_data::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod batch;
pub mod cifar;
pub mod dataset;
pub mod error;
pub mod folder;
pub mod idx;
pub mod memory;
pub mod resolve;
mod rng;
pub mod split;

pub use batch::{Batch, BatchOptions, Batcher, Epoch};
pub use cifar::{CIFAR10_CLASSES, load_cifar10_dir};
pub use dataset::{Augment, Dataset, DatasetPair, Normalization, RawImage, RawSample, Sample};
pub use error::{Error, Result, Warning};
pub use folder::{FolderDataset, FolderOptions, Verify, load_image_file, load_image_folder};
pub use idx::{FASHION_MNIST_CLASSES, IdxArray, IdxMeta, load_idx_dir, read_idx, write_idx};
pub use memory::{MemoryDataset, TrainTransform};
pub use resolve::{
    DataSource, DatasetFormat, SYSTEM_FASHION_MNIST_DIR, detect_format, embedded_subset, open,
    resolve, resolve_default,
};
pub use split::{PAPER_TRAIN_FRACTION, stratified_split};
