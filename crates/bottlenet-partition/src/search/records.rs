//! The record each finished configuration leaves behind (Algorithm 1 line 24) and the JSON-lines
//! files that hold them: appended one whole line per write, read back with a torn last line
//! (a write cut short) skipped with a warning and cut off before the next append.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spec::{SearchConfig, SearchMode};
use super::split_name;
use crate::error::{Error, Result};

/// What training and evaluating one configuration measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Top-1 accuracy with the real codec in the loop, percent.
    pub accuracy: f64,
    /// Mean wire-frame bytes per image, headers included (`D_j` candidate).
    pub mean_bytes: f64,
    /// 95th percentile of the wire-frame bytes per image.
    pub p95_bytes: f64,
    /// Wall-clock seconds spent on the configuration (information only).
    pub seconds: f64,
}

/// One finished configuration: one line of a shard's record file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRecord {
    /// [`SearchConfig::id`] of the configuration; unique within a search.
    pub id: String,
    /// Split name, `RB<split_index>`.
    pub split: String,
    pub split_index: u32,
    pub c_prime: u32,
    pub s: u32,
    pub codec: String,
    pub quality: u8,
    pub bits: u8,
    pub mode: SearchMode,
    /// Top-1 accuracy, percent.
    pub accuracy: f64,
    /// Mean frame bytes per image.
    pub mean_bytes: f64,
    /// 95th-percentile frame bytes per image.
    pub p95_bytes: f64,
    /// Where the trained model was saved.
    pub checkpoint: PathBuf,
    /// Wall-clock seconds; never compared when deduplicating.
    pub seconds: f64,
}

impl SearchRecord {
    /// The configuration this record belongs to.
    pub fn config(&self) -> SearchConfig {
        SearchConfig {
            split: self.split_index,
            c_prime: self.c_prime,
            s: self.s,
            quality: self.quality,
            mode: self.mode,
            codec: self.codec.clone(),
            bits: self.bits,
        }
    }

    /// Checks that the id and split name agree with the fields and the figures are in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidResults(format!(
                "record {:?}: {reason}",
                self.id
            )))
        };
        let expected = self.config().id();
        if self.id != expected {
            return bad(format!(
                "id does not match its fields (expected {expected:?})"
            ));
        }
        if self.split != split_name(self.split_index) {
            return bad(format!(
                "split name {:?} does not match split_index {}",
                self.split, self.split_index
            ));
        }
        if !(self.accuracy.is_finite() && (0.0..=100.0).contains(&self.accuracy)) {
            return bad(format!(
                "accuracy must be a percentage, got {}",
                self.accuracy
            ));
        }
        for (field, value) in [
            ("mean_bytes", self.mean_bytes),
            ("p95_bytes", self.p95_bytes),
            ("seconds", self.seconds),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!(
                    "{field} must be finite and not negative, got {value}"
                ));
            }
        }
        Ok(())
    }

    /// Equal in everything but the (never reproducible) wall-clock seconds.
    pub(super) fn same_result(&self, other: &Self) -> bool {
        Self {
            seconds: 0.0,
            ..self.clone()
        } == Self {
            seconds: 0.0,
            ..other.clone()
        }
    }

    /// Grid order: split, `c'`, `s`, quality, mode.
    pub(super) fn grid_order(&self, other: &Self) -> Ordering {
        (
            self.split_index,
            self.c_prime,
            self.s,
            self.quality,
            self.mode,
        )
            .cmp(&(
                other.split_index,
                other.c_prime,
                other.s,
                other.quality,
                other.mode,
            ))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// Appends `record` to the JSON-lines file at `path` (created if missing) as one line, in a
/// single write, then flushes it to disk.
///
/// If the file ends in a torn line (a write cut short: no final newline, not a whole record),
/// that fragment is cut off first: it belonged to a configuration that never finished. A whole
/// record lacking only its newline is kept and the newline added.
pub fn append_record(path: impl AsRef<Path>, record: &SearchRecord) -> Result<()> {
    let path = path.as_ref();
    record.validate()?;
    let mut line = serde_json::to_string(record).map_err(|source| Error::Serialize {
        what: "search record",
        source,
    })?;
    line.push('\n');
    let io = |action: &'static str| {
        move |source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io("open for appending"))?;
    cut_torn_tail(&mut file).map_err(io("repair the torn last line of"))?;
    file.write_all(line.as_bytes()).map_err(io("append to"))?;
    file.flush().map_err(io("flush"))?;
    file.sync_data().map_err(io("sync"))
}

/// Truncates `file` after its last newline when it does not end in one.
fn cut_torn_tail(file: &mut fs::File) -> std::io::Result<()> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // No final newline: find the last line (files are small, one line per trained model).
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if serde_json::from_slice::<SearchRecord>(&bytes[start..]).is_ok() {
        // A whole record that only lacks its newline: readers accept it, so keep it.
        file.write_all(b"\n")
    } else {
        file.set_len(start as u64)
    }
}

/// The records of one file, and what was skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordFile {
    /// Records in file order.
    pub records: Vec<SearchRecord>,
    /// One line per skipped torn last line.
    pub warnings: Vec<String>,
}

impl RecordFile {
    /// Ids of the records in the file.
    pub fn ids(&self) -> BTreeSet<String> {
        self.records.iter().map(|r| r.id.clone()).collect()
    }
}

/// Reads a record file. Blank lines are ignored. A last line without a final newline that does
/// not parse is a write cut short: it is skipped with a warning. Any other bad line is an error
/// naming the file and line.
pub fn read_records(path: impl AsRef<Path>) -> Result<RecordFile> {
    let path = path.as_ref();
    let text = fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse_records(&text, path)
}

fn parse_records(bytes: &[u8], path: &Path) -> Result<RecordFile> {
    let mut out = RecordFile::default();
    let complete = bytes.last().is_none_or(|&b| b == b'\n');
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let is_last = i + 1 == count;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = std::str::from_utf8(line)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str::<SearchRecord>(s).map_err(|e| e.to_string()));
        match parsed {
            Ok(record) => {
                record.validate().map_err(|e| {
                    Error::InvalidResults(format!("{}:{}: {e}", path.display(), i + 1))
                })?;
                out.records.push(record);
            }
            Err(_) if is_last && !complete => out.warnings.push(format!(
                "{}:{}: skipped a torn last line ({} bytes, no final newline): a write was cut short",
                path.display(),
                i + 1,
                line.len()
            )),
            Err(reason) => {
                return Err(Error::InvalidResults(format!(
                    "{}:{}: not a search record: {reason}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

/// Ids already finished in a shard's record file; empty when the file does not exist yet.
/// A torn last line does not count as finished.
pub fn finished_ids(path: impl AsRef<Path>) -> Result<BTreeSet<String>> {
    let path = path.as_ref();
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        _ => Ok(read_records(path)?.ids()),
    }
}

/// The shard record files in a search output folder (`shard-*.jsonl`), sorted by name; empty
/// when the folder does not exist yet.
pub fn record_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(|source| Error::Io {
            action: "list",
            path: dir.to_path_buf(),
            source,
        })?,
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                action: "list",
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("shard-") && name.ends_with(".jsonl") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Ids finished by any shard in a search output folder: the union over [`record_files`].
///
/// Resuming from this set rather than from the shard's own file keeps a search consistent when
/// it is restarted with a different shard count: a configuration some earlier shard finished
/// is not trained again (which would give a second, different record and make the merge fail).
/// Other shards' files may be growing meanwhile; their torn last lines are not counted.
pub fn finished_ids_in(dir: impl AsRef<Path>) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for file in record_files(dir)? {
        ids.extend(read_records(&file)?.ids());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::fixtures::rec;

    #[test]
    fn records_with_inconsistent_ids_are_rejected() {
        let mut r = rec(1, 1, 20, 75.0, 100.0, 110.0);
        r.id = "RB1-c9-s2-q20".into();
        assert!(
            r.validate()
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        let mut r = rec(1, 1, 20, 75.0, 100.0, 110.0);
        r.mean_bytes = f64::NAN;
        assert!(r.validate().is_err());
    }

    #[test]
    fn a_torn_line_in_the_middle_is_an_error_naming_the_line() {
        let good = serde_json::to_string(&rec(1, 1, 20, 75.0, 100.0, 110.0)).unwrap();
        let text = format!("{good}\n{{\"id\":\"RB\n{good}\n");
        let err = parse_records(text.as_bytes(), Path::new("f.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.jsonl:2"), "{err}");
        let torn = format!("{good}\n\n{{\"id\":\"RB");
        let file = parse_records(torn.as_bytes(), Path::new("f.jsonl")).unwrap();
        assert_eq!(file.records.len(), 1);
        assert_eq!(file.warnings.len(), 1);
        assert!(
            file.warnings[0].contains("f.jsonl:3"),
            "{:?}",
            file.warnings
        );
    }
}
