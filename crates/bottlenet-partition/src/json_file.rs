//! Reading and atomically writing the crate's JSON data files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// Writes `value` as pretty JSON (with a final newline) so that readers never see a partial
/// file: the bytes go to a temporary file in the same directory, are flushed to disk, and the
/// temporary file is renamed over `path` (rename is atomic within one file system).
pub(crate) fn write_atomic<T: Serialize>(path: &Path, value: &T, what: &'static str) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|source| Error::Serialize { what, source })?;
    text.push('\n');
    let io_err = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let temp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&temp).map_err(io_err("create", &temp))?;
        file.write_all(text.as_bytes())
            .map_err(io_err("write", &temp))?;
        file.sync_all().map_err(io_err("sync", &temp))?;
        fs::rename(&temp, path).map_err(io_err("rename a temporary file onto", path))
    })();
    if result.is_err() {
        // Best effort: a failed write must not leave the temporary file behind.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// `dir/.name.<pid>.tmp` beside `path`, so the rename never crosses file systems.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}
