//! The project's one way to write a file so that readers never see a partial one: the bytes go
//! to a fresh temporary file in the same folder, are flushed to disk, and the temporary file is
//! renamed over the target (atomic within one file system). A crash or a failed write leaves the
//! previous file as it was; a file of the same name that is a hard link elsewhere is replaced,
//! not rewritten in place. Used for profiles and results here, and by the report and training
//! crates for their outputs.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (see the module docs). The folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_err = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { action, path, source }
    };
    let temp = temp_path(path);
    let result = (|| {
        // create_new: never adopt (or truncate) a file someone else holds open under that name.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        file.write_all(bytes).map_err(io_err("write", &temp))?;
        file.sync_all().map_err(io_err("sync", &temp))?;
        fs::rename(&temp, path).map_err(io_err("rename a temporary file onto", path))
    })();
    if result.is_err() {
        // Best effort: a failed write must not leave the temporary file behind.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// `dir/.name.<pid>.<n>.tmp` beside `path`, so the rename never crosses file systems and two
/// writers (processes or threads) never share a temporary file.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    /// Writing in place (`fs::write`) would change every hard link of the old file too.
    #[test]
    fn a_hard_linked_target_is_replaced_not_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (keep, path) = (dir.path().join("keep.txt"), dir.path().join("a.txt"));
        fs::write(&keep, b"precious").unwrap();
        fs::hard_link(&keep, &path).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&keep).unwrap(), b"precious");
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("no/such/a.txt"), b"x").unwrap_err().to_string();
        assert!(err.contains("a.txt"), "{err}");
    }
}
