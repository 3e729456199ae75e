//! One module per subcommand, and the helpers they share.

pub mod bench;
pub mod codec;
pub mod demo;
pub mod eval;
pub mod frame;
pub mod profile;
pub mod infer;
pub mod model;
pub mod report;
pub mod select;
pub mod search;
pub mod serve;
pub mod train;

use anyhow::Result;
use bottlenet_data::{DataSource, DatasetPair, resolve_default};
use std::path::Path;

/// The dataset: `explicit`, else Debian's full Fashion-MNIST, else the embedded subset.
/// Files that could not be read are reported on stderr, one line each.
pub fn open_data(explicit: Option<&Path>) -> Result<(DatasetPair, DataSource)> {
    let (pair, source) = resolve_default(explicit)?;
    for warning in &pair.warnings {
        eprintln!("warning: skipped {warning}");
    }
    Ok((pair, source))
}

/// A progress bar on stderr, hidden when `quiet` (the training crate's style).
pub fn progress(quiet: bool, len: u64, prefix: String) -> indicatif::ProgressBar {
    bottlenet_train::trainer::progress_bar(quiet, len, prefix)
}
