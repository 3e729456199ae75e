//! The crate's one error type: every way a report can fail to be computed or written.

use std::path::PathBuf;

/// Why a report could not be produced. Every variant names what was wrong in one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading, joining or ranking the inputs failed (bad profile, results, network, …).
    #[error(transparent)]
    Partition(#[from] bottlenet_partition::Error),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write CSV {path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("cannot encode PNG {path}: {source}")]
    Png {
        path: PathBuf,
        #[source]
        source: png::EncodingError,
    },
    #[error("cannot draw the {plot} plot: {reason}")]
    Plot { plot: &'static str, reason: String },
    #[error("the embedded font assets/DejaVuSans.ttf cannot be loaded")]
    Font,
    #[error("invalid report input: {0}")]
    InvalidInput(String),
}

/// Result of every fallible operation in this crate.
pub type Result<T> = std::result::Result<T, Error>;
