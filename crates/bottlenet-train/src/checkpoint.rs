//! Per-epoch checkpoints, written so that a crash at any instant leaves the previous one intact:
//! each checkpoint is written into a temporary folder and renamed into place, then the `LATEST`
//! pointer is replaced (temporary file + rename), and only then are older checkpoints removed.

use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

pub const MODEL_FILE: &str = "model.bpk";
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
pub const STATE_FILE: &str = "state.json";
const LATEST: &str = "LATEST";

/// One epoch's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub loss: f64,
    pub train_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// What a checkpoint records besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed (the next run starts at this epoch index).
    pub epochs_done: usize,
    pub config: ExperimentConfig,
    pub history: Vec<EpochStats>,
}

/// The checkpoint folder of a training output folder.
pub fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Writes a checkpoint for `state.epochs_done`; `write_weights` writes the model and optimizer
/// files into the folder it is given.
pub fn save(out: &Path, state: &TrainState, write_weights: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let root = checkpoints_dir(out);
    fs::create_dir_all(&root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let name = format!("epoch-{:04}", state.epochs_done);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(&root)
        .map_err(|e| Error::io(format!("creating a temporary folder in {}", root.display()), e))?;
    write_weights(tmp.path())?;
    let json = serde_json::to_string_pretty(state).map_err(|e| Error::Invalid(format!("serialising the training state: {e}")))?;
    fs::write(tmp.path().join(STATE_FILE), json).map_err(|e| Error::io("writing state.json", e))?;
    let final_dir = root.join(&name);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| Error::io(format!("replacing {}", final_dir.display()), e))?;
    }
    fs::rename(tmp.keep(), &final_dir).map_err(|e| Error::io(format!("moving the checkpoint to {}", final_dir.display()), e))?;
    write_atomic(&root.join(LATEST), name.as_bytes())?;
    // The pointer is durable: older checkpoints can go.
    if let Ok(entries) = fs::read_dir(&root) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let other = file_name.to_string_lossy();
            if other.starts_with("epoch-") && other != name {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(final_dir)
}

/// The latest complete checkpoint and its state, if any.
pub fn latest(out: &Path) -> Result<Option<(PathBuf, TrainState)>> {
    let root = checkpoints_dir(out);
    let pointer = root.join(LATEST);
    let name = match fs::read_to_string(&pointer) {
        Ok(name) => name.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", pointer.display()), e)),
    };
    let dir = root.join(&name);
    let state_path = dir.join(STATE_FILE);
    let text = fs::read_to_string(&state_path).map_err(|e| Error::io(format!("reading {}", state_path.display()), e))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| Error::Checkpoint { path: state_path, reason: e.to_string() })?;
    Ok(Some((dir, state)))
}

/// Writes `bytes` to `path` atomically (the project's one helper: temporary file in the same
/// folder, synced, renamed; permissions as any new file under the umask), creating the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    bottlenet_partition::write_atomic(path, bytes).map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    /// Regression: results and configs were written 0600 (a temporary file's mode), unreadable
    /// to the rest of a team sharing a run folder. They get what any new file gets.
    #[cfg(unix)]
    #[test]
    fn atomic_files_have_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"x").unwrap();
        let atomic = dir.path().join("sub/atomic.json");
        write_atomic(&atomic, b"{}").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
        assert_eq!(fs::read(&atomic).unwrap(), b"{}");
    }
}
