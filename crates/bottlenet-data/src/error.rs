//! The data crate's one error type: every way a dataset cannot be found, read or indexed.

use std::fmt;
use std::path::PathBuf;

/// A file that was skipped while loading a dataset, and why.
///
/// Loaders collect these instead of failing (unless asked to be strict); the caller decides how
/// to report them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file (or folder) concerned.
    pub path: PathBuf,
    /// One line saying what was wrong with it.
    pub reason: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Why a dataset could not be opened, read or indexed. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid {format} file: {reason}", path.display())]
    Format {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    #[error("{}: cannot decode image: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    #[error("{}: not a dataset: {reason}", path.display())]
    NotADataset { path: PathBuf, reason: String },
    #[error("{count} unreadable file(s) and strict loading is on; first: {first}")]
    Strict { count: usize, first: Warning },
    #[error("sample index {index} is out of range for a dataset of {len} samples")]
    IndexOutOfRange { index: usize, len: usize },
    #[error("sample {index} has {got} values but the dataset's input shape needs {expected}")]
    SampleShape {
        index: usize,
        expected: usize,
        got: usize,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("no dataset available: {0}")]
    NoDataset(String),
}

/// Result of every fallible operation in this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed `format` file at `path`.
    pub(crate) fn format(
        path: impl Into<PathBuf>,
        format: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Error::Format {
            path: path.into(),
            format,
            reason: reason.into(),
        }
    }

    /// `path` cannot be used as a dataset.
    pub(crate) fn not_a_dataset(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::NotADataset {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
