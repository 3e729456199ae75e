//! Reading and atomically writing the crate's JSON data files.

use std::fs;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// Reads and parses `path`; `what` names the kind of file in errors ("profile", "results").
pub(crate) fn read<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` as pretty JSON (with a final newline) through [`write_atomic`], so readers
/// never see a partial file.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T, what: &'static str) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|source| Error::Serialize { what, source })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}
