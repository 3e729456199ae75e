//! Algorithm 1, training phase (paper §2.3, lines 18–30), without the training itself: the
//! search grid, its division into shards for many machines, the record each finished
//! configuration leaves behind, and the merge that keeps, per split, the configuration with the
//! fewest bytes among those accurate enough.
//!
//! The flow, as run by `bottlenet search` (the CLI owns the training):
//! 1. [`SearchSpec::load`] reads `configs/search/<name>.toml`; [`SearchSpec::grid`] enumerates
//!    split × `c'` × `s` × quality × mode in a fixed order (lines 19–21).
//! 2. [`shard`] gives shard `i` of `N` its configurations ([`Shard`] parses `--shard i/N`);
//!    [`finished_ids_in`] lists those already finished in the output folder (any shard's
//!    `shard-*.jsonl`, see [`Shard::file_name`]), so a restarted job skips them ([`remaining`]).
//! 3. Each finished configuration is appended as one JSON line ([`append_record`], line 24).
//! 4. [`merge`] reads every shard's file, drops exact duplicates, rejects conflicting ones, and
//!    keeps per split the smallest mean bytes `D_j` within tolerance of the baseline (line 29);
//!    [`MergeOutcome::training_results`] turns that into the selection input.
//!
//! Record files are JSON lines written by appending one whole line per record in a single
//! write. A job killed mid-write can leave a torn last line (no final newline): readers skip it
//! with a warning, and the next [`append_record`] cuts it off before writing, so the
//! configuration it belonged to is simply trained again.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::results::{
    CloudOnlyResult, MobileOnlyResult, RESULTS_FORMAT, SplitResult, TrainingResults,
};
use crate::select::ACCURACY_EPSILON;

/// The paper's accuracy tolerance, percentage points (§3.2).
pub const DEFAULT_TOLERANCE_POINTS: f64 = 2.0;
/// The paper's JPEG quality (§3.3).
pub const DEFAULT_QUALITY: u8 = 20;
/// The paper's quantizer depth (§2.2, eq. 1).
pub const DEFAULT_BITS: u8 = 8;
/// Default codec: abbreviated JPEG (DESIGN §1), named as `bottlenet-codec`'s `CodecKind` parses it.
pub const DEFAULT_CODEC: &str = "jpeg-abbrev";
/// Codec names `bottlenet-codec` understands; the lossy ones take a quality in 1..=100, the
/// lossless ones quality 0. (This crate must not depend on the codec, so the list is repeated.)
pub const LOSSY_CODECS: [&str; 2] = ["jpeg", "jpeg-abbrev"];
/// See [`LOSSY_CODECS`].
pub const LOSSLESS_CODECS: [&str; 2] = ["png", "raw"];

/// The name of split point `index` in results, profiles and records: `RB<index>` (paper
/// Table 4: the bottleneck after residual block `index`).
pub fn split_name(index: u32) -> String {
    format!("RB{index}")
}

/// How the bottleneck meets the codec while training (paper §3.3, Fig. 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Compression-aware: the codec round trip in the forward pass, straight-through backward.
    Aware,
    /// Trained with identity in place of the codec; the codec is inserted only at evaluation.
    Naive,
}

impl SearchMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Aware => "aware",
            Self::Naive => "naive",
        }
    }
}

impl fmt::Display for SearchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SearchMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "aware" => Ok(Self::Aware),
            "naive" => Ok(Self::Naive),
            _ => Err(Error::InvalidParameter(format!(
                "unknown training mode {s:?}; expected aware or naive"
            ))),
        }
    }
}

/// Which split points to search: `"all"` (every block of the backbone) or a list of indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Splits {
    All,
    List(Vec<u32>),
}

impl Serialize for Splits {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::List(list) => list.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Splits {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<u32>),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "splits must be \"all\" or a list of block indices, e.g. [1, 2, 3]",
            )
        })? {
            Raw::Word(word) if word.eq_ignore_ascii_case("all") => Ok(Self::All),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "splits must be \"all\" or a list of block indices, got {word:?}"
            ))),
            Raw::List(list) => Ok(Self::List(list)),
        }
    }
}

/// How long each configuration trains (the paper trains 90 epochs; a search usually affords less).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Epochs per configuration, ≥ 1.
    pub epochs: u32,
    /// Cap on optimisation steps per epoch, ≥ 1 when present; the whole epoch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_per_epoch: Option<u32>,
}

/// One search: the TOML file `configs/search/<name>.toml`.
///
/// ```toml
/// name = "resnet50-miniimagenet"
/// base = "configs/resnet50-aware.toml"   # experiment config every configuration starts from
/// baseline = "runs/resnet50-baseline"    # trained unmodified network: accuracy reference, init
/// splits = "all"                         # or [1, 2, 3]
/// c_primes = [1, 2, 5, 10]
/// ss = [1, 2]
/// qualities = [20]                       # default [20]
/// codec = "jpeg-abbrev"                  # default
/// bits = 8                               # default
/// modes = ["aware"]                      # default; add "naive" for Fig. 7
/// tolerance_points = 2.0                 # default
/// [budget]
/// epochs = 2
/// steps_per_epoch = 200
/// ```
///
/// Paths are kept as written and resolved by the caller against its working directory, as in
/// the experiment configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Name of the search; letters, digits, `-`, `_`, `.` (it names output folders).
    pub name: String,
    /// Base experiment config (TOML) that each configuration overrides.
    pub base: PathBuf,
    /// Folder of the trained baseline (the unmodified network): its accuracy is the reference
    /// for the tolerance.
    pub baseline: PathBuf,
    pub splits: Splits,
    /// Reduced channel counts `c'` to try, each ≥ 1.
    pub c_primes: Vec<u32>,
    /// Spatial reduction factors `s` to try, each ≥ 1 (1: no spatial reduction).
    pub ss: Vec<u32>,
    /// Codec qualities to try: 1..=100 for JPEG, 0 for the lossless codecs.
    #[serde(default = "default_qualities")]
    pub qualities: Vec<u8>,
    #[serde(default = "default_codec")]
    pub codec: String,
    /// Quantizer bits `n` of eq. 1, 1..=8.
    #[serde(default = "default_bits")]
    pub bits: u8,
    #[serde(default = "default_modes")]
    pub modes: Vec<SearchMode>,
    pub budget: Budget,
    /// Allowed accuracy loss against the baseline, percentage points (finite, ≥ 0).
    #[serde(default = "default_tolerance")]
    pub tolerance_points: f64,
}

fn default_qualities() -> Vec<u8> {
    vec![DEFAULT_QUALITY]
}
fn default_codec() -> String {
    DEFAULT_CODEC.into()
}
fn default_bits() -> u8 {
    DEFAULT_BITS
}
fn default_modes() -> Vec<SearchMode> {
    vec![SearchMode::Aware]
}
fn default_tolerance() -> f64 {
    DEFAULT_TOLERANCE_POINTS
}

impl SearchSpec {
    /// Reads, parses and validates a search file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates TOML `text`; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let spec: Self = toml::from_str(text).map_err(|e| {
            Error::InvalidParameter(format!("search file {}: {}", path.display(), e.message()))
        })?;
        spec.validate().map_err(|e| match e {
            Error::InvalidParameter(reason) => {
                Error::InvalidParameter(format!("search file {}: {reason}", path.display()))
            }
            other => other,
        })?;
        Ok(spec)
    }

    /// The spec as TOML (saved beside the search's output).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| {
            Error::InvalidParameter(format!("cannot write the search spec as TOML: {e}"))
        })
    }

    /// Checks every invariant stated on the fields. Lists must be non-empty and free of
    /// repeats, so that every configuration appears once in the grid.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidParameter(reason));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad(format!(
                "name {:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                self.name
            ));
        }
        if let Splits::List(list) = &self.splits {
            check_list("splits", list, 1)?;
        }
        check_list("c_primes", &self.c_primes, 1)?;
        check_list("ss", &self.ss, 1)?;
        check_list("qualities", &self.qualities, 0)?;
        check_list("modes", &self.modes, SearchMode::Aware)?;
        if LOSSY_CODECS.contains(&self.codec.as_str()) {
            if let Some(q) = self.qualities.iter().find(|&&q| !(1..=100).contains(&q)) {
                return bad(format!(
                    "codec {} takes qualities in 1..=100, got {q}",
                    self.codec
                ));
            }
        } else if LOSSLESS_CODECS.contains(&self.codec.as_str()) {
            if self.qualities != [0] {
                return bad(format!(
                    "the lossless codec {} takes qualities = [0], got {:?}",
                    self.codec, self.qualities
                ));
            }
        } else {
            return bad(format!(
                "unknown codec {:?}; expected one of: {}, {}",
                self.codec,
                LOSSY_CODECS.join(", "),
                LOSSLESS_CODECS.join(", ")
            ));
        }
        if !(1..=8).contains(&self.bits) {
            return bad(format!("bits must be in 1..=8, got {}", self.bits));
        }
        if self.budget.epochs == 0 {
            return bad("budget.epochs must be at least 1".into());
        }
        if self.budget.steps_per_epoch == Some(0) {
            return bad("budget.steps_per_epoch must be at least 1 when given".into());
        }
        if !(self.tolerance_points.is_finite() && self.tolerance_points >= 0.0) {
            return bad(format!(
                "tolerance_points must be finite and not negative, got {}",
                self.tolerance_points
            ));
        }
        Ok(())
    }

    /// The split indices searched, ascending, for a backbone of `num_blocks` blocks.
    ///
    /// Fails when an explicit index is outside `1..=num_blocks`.
    pub fn split_indices(&self, num_blocks: u32) -> Result<Vec<u32>> {
        match &self.splits {
            Splits::All if num_blocks == 0 => Err(Error::InvalidParameter(
                "splits = \"all\" needs a backbone with at least one block".into(),
            )),
            Splits::All => Ok((1..=num_blocks).collect()),
            Splits::List(list) => {
                if let Some(bad) = list.iter().find(|&&j| j == 0 || j > num_blocks) {
                    return Err(Error::InvalidParameter(format!(
                        "split {bad} does not exist: the backbone has blocks 1..={num_blocks}"
                    )));
                }
                let mut list = list.clone();
                list.sort_unstable();
                Ok(list)
            }
        }
    }

    /// Every configuration of the search (Algorithm 1 lines 19–21), for a backbone of
    /// `num_blocks` residual blocks (needed to expand `"all"` and to check explicit indices).
    ///
    /// Order, fixed: split, then `c'`, then `s`, then quality, each ascending, then mode
    /// (aware before naive). The same spec always gives the same grid, on every machine, which
    /// is what lets shards be computed independently.
    pub fn grid(&self, num_blocks: u32) -> Result<Vec<SearchConfig>> {
        self.validate()?;
        let splits = self.split_indices(num_blocks)?;
        let sorted = |v: &[u32]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v
        };
        let (c_primes, ss) = (sorted(&self.c_primes), sorted(&self.ss));
        let mut qualities = self.qualities.clone();
        qualities.sort_unstable();
        let mut modes = self.modes.clone();
        modes.sort_unstable();
        let mut grid = Vec::with_capacity(
            splits.len() * c_primes.len() * ss.len() * qualities.len() * modes.len(),
        );
        for &split in &splits {
            for &c_prime in &c_primes {
                for &s in &ss {
                    for &quality in &qualities {
                        for &mode in &modes {
                            grid.push(SearchConfig {
                                split,
                                c_prime,
                                s,
                                quality,
                                mode,
                                codec: self.codec.clone(),
                                bits: self.bits,
                            });
                        }
                    }
                }
            }
        }
        Ok(grid)
    }
}

fn check_list<T: PartialEq + PartialOrd + fmt::Debug + Copy>(
    field: &str,
    list: &[T],
    min: T,
) -> Result<()> {
    if list.is_empty() {
        return Err(Error::InvalidParameter(format!("{field} is empty")));
    }
    for (i, v) in list.iter().enumerate() {
        if *v < min {
            return Err(Error::InvalidParameter(format!(
                "{field}: {v:?} is below the minimum {min:?}"
            )));
        }
        if list[..i].contains(v) {
            return Err(Error::InvalidParameter(format!(
                "{field} lists {v:?} twice"
            )));
        }
    }
    Ok(())
}

/// One point of the search grid: a bottleneck `(c', s)` after block `split`, trained in `mode`
/// with the codec at `quality`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Blocks `1..=split` run on the phone.
    pub split: u32,
    pub c_prime: u32,
    pub s: u32,
    pub quality: u8,
    pub mode: SearchMode,
    pub codec: String,
    pub bits: u8,
}

impl SearchConfig {
    /// Stable identifier: `RB3-c2-s2-q20` for aware training, `RB3-c2-s2-q20-naive` for naive.
    /// Codec and bits are fixed per search and not part of it.
    pub fn id(&self) -> String {
        let base = format!(
            "{}-c{}-s{}-q{}",
            split_name(self.split),
            self.c_prime,
            self.s,
            self.quality
        );
        match self.mode {
            SearchMode::Aware => base,
            SearchMode::Naive => format!("{base}-naive"),
        }
    }

    /// The record of this configuration once trained and evaluated.
    pub fn record(&self, measured: Measurement, checkpoint: impl Into<PathBuf>) -> SearchRecord {
        SearchRecord {
            id: self.id(),
            split: split_name(self.split),
            split_index: self.split,
            c_prime: self.c_prime,
            s: self.s,
            codec: self.codec.clone(),
            quality: self.quality,
            bits: self.bits,
            mode: self.mode,
            accuracy: measured.accuracy,
            mean_bytes: measured.mean_bytes,
            p95_bytes: measured.p95_bytes,
            checkpoint: checkpoint.into(),
            seconds: measured.seconds,
        }
    }
}

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
    fn same_result(&self, other: &Self) -> bool {
        Self {
            seconds: 0.0,
            ..self.clone()
        } == Self {
            seconds: 0.0,
            ..other.clone()
        }
    }

    /// Grid order: split, `c'`, `s`, quality, mode.
    fn grid_order(&self, other: &Self) -> Ordering {
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

/// Shard `index` of `count` (`--shard index/count`), `0 ≤ index < count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole grid as one shard.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Self> {
        if count == 0 {
            return Err(Error::InvalidParameter(
                "shard count must be at least 1".into(),
            ));
        }
        if index >= count {
            return Err(Error::InvalidParameter(format!(
                "shard index {index} is out of range: shards of {count} are numbered 0..={}",
                count - 1
            )));
        }
        Ok(Self { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the grid position `position` belongs to this shard: `position mod count == index`
    /// (round robin over the grid order, so shards differ in size by at most one and each gets
    /// a mix of shallow and deep splits).
    pub fn owns(self, position: usize) -> bool {
        position % self.count as usize == self.index as usize
    }

    /// The record file of this shard inside a search output folder: `shard-<i>-of-<N>.jsonl`.
    pub fn file_name(self) -> String {
        format!("shard-{}-of-{}.jsonl", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Reads `i/N`, e.g. `0/2` (as `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| {
            Error::InvalidParameter(format!(
                "shard {s:?}: {reason}; expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/2"
            ))
        };
        let (index, count) = s.trim().split_once('/').ok_or_else(|| bad("no '/'"))?;
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| bad(&format!("{what} {part:?} is not a whole number")))
        };
        let (index, count) = (number(index, "index")?, number(count, "count")?);
        Self::new(index, count).map_err(|e| match e {
            Error::InvalidParameter(reason) => bad(&reason),
            other => other,
        })
    }
}

/// The part of `grid` that `shard` runs, in grid order. Over `0..count` the shards are disjoint
/// and together cover the grid.
pub fn shard<T: Clone>(grid: &[T], shard: Shard) -> Vec<T> {
    grid.iter()
        .enumerate()
        .filter(|(position, _)| shard.owns(*position))
        .map(|(_, config)| config.clone())
        .collect()
}

/// The configurations of `configs` whose id is not in `finished` (resume).
pub fn remaining(configs: &[SearchConfig], finished: &BTreeSet<String>) -> Vec<SearchConfig> {
    configs
        .iter()
        .filter(|c| !finished.contains(&c.id()))
        .cloned()
        .collect()
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

/// A split for which no configuration reached the accuracy threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmetSplit {
    pub split: String,
    pub split_index: u32,
    /// Configurations tried at this split.
    pub configurations: usize,
    /// Best accuracy among them, percent.
    pub best_accuracy: f64,
}

/// The merged search: every distinct record, the one kept per split, and what fell short.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// Accuracy of the unmodified network, percent.
    pub baseline_accuracy: f64,
    /// Allowed loss, points; eligible means `accuracy ≥ baseline − tolerance` (with
    /// [`ACCURACY_EPSILON`] slack, as in selection).
    pub tolerance_points: f64,
    /// Every distinct record, in grid order.
    pub records: Vec<SearchRecord>,
    /// Per split, in index order, the eligible record with the fewest mean bytes (ties: smaller
    /// p95 bytes, then id) — Algorithm 1 line 29.
    pub chosen: Vec<SearchRecord>,
    /// Splits with records but no eligible one, in index order.
    pub unmet: Vec<UnmetSplit>,
    /// Records dropped as exact repeats of another (same id and results).
    pub duplicates: usize,
    /// Torn lines skipped while reading.
    pub warnings: Vec<String>,
}

impl MergeOutcome {
    /// The accuracy a configuration needs, percent.
    pub fn threshold(&self) -> f64 {
        self.baseline_accuracy - self.tolerance_points
    }

    /// Ids of `grid` that no record covers (configurations that never finished).
    pub fn missing(&self, grid: &[SearchConfig]) -> Vec<String> {
        let done: BTreeSet<&str> = self.records.iter().map(|r| r.id.as_str()).collect();
        grid.iter()
            .map(SearchConfig::id)
            .filter(|id| !done.contains(id.as_str()))
            .collect()
    }

    /// The selection input (the partition crate's results file): one [`SplitResult`] per chosen
    /// record; splits without an eligible configuration are left out. Mobile-only runs the
    /// unmodified network, so its accuracy is the baseline's; cloud-only's bytes and accuracy
    /// (the input JPEG) come from the caller.
    pub fn training_results(
        &self,
        model: &str,
        dataset: &str,
        cloud_only: CloudOnlyResult,
    ) -> Result<TrainingResults> {
        let results = TrainingResults {
            format: RESULTS_FORMAT,
            model: model.into(),
            dataset: dataset.into(),
            baseline_accuracy: self.baseline_accuracy,
            source: format!(
                "bottlenet search merge: {} configurations, {} splits kept, tolerance {} points",
                self.records.len(),
                self.chosen.len(),
                self.tolerance_points
            ),
            splits: self
                .chosen
                .iter()
                .map(|r| SplitResult {
                    name: r.split.clone(),
                    index: r.split_index,
                    bytes: r.mean_bytes,
                    accuracy: r.accuracy,
                    c_prime: Some(r.c_prime),
                    s: Some(r.s),
                })
                .collect(),
            cloud_only,
            mobile_only: MobileOnlyResult {
                accuracy: self.baseline_accuracy,
            },
        };
        results.validate()?;
        Ok(results)
    }
}

/// Reads every record file and merges them ([`merge_records`]); torn last lines are skipped and
/// reported in [`MergeOutcome::warnings`].
pub fn merge(
    record_files: &[impl AsRef<Path>],
    baseline_accuracy: f64,
    tolerance_points: f64,
) -> Result<MergeOutcome> {
    if record_files.is_empty() {
        return Err(Error::InvalidParameter("no record files to merge".into()));
    }
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for path in record_files {
        let file = read_records(path)?;
        records.extend(file.records);
        warnings.extend(file.warnings);
    }
    let mut outcome = merge_records(records, baseline_accuracy, tolerance_points)?;
    outcome.warnings = warnings;
    Ok(outcome)
}

/// Merges records from any number of shards: repeats with the same id must agree on everything
/// but `seconds` (they are then counted once), otherwise the merge fails naming the id. Then,
/// per split, keeps the eligible record with the fewest mean bytes (ties: smaller p95, then id).
pub fn merge_records(
    records: impl IntoIterator<Item = SearchRecord>,
    baseline_accuracy: f64,
    tolerance_points: f64,
) -> Result<MergeOutcome> {
    if !(baseline_accuracy.is_finite() && (0.0..=100.0).contains(&baseline_accuracy)) {
        return Err(Error::InvalidParameter(format!(
            "baseline accuracy must be a percentage, got {baseline_accuracy}"
        )));
    }
    if !(tolerance_points.is_finite() && tolerance_points >= 0.0) {
        return Err(Error::InvalidParameter(format!(
            "accuracy tolerance must be finite and not negative, got {tolerance_points}"
        )));
    }
    let mut by_id: BTreeMap<String, SearchRecord> = BTreeMap::new();
    let mut duplicates = 0;
    for record in records {
        record.validate()?;
        match by_id.get(&record.id) {
            Some(kept) if kept.same_result(&record) => duplicates += 1,
            Some(kept) => {
                return Err(Error::InvalidResults(format!(
                    "configuration {:?} has two different records (accuracy {} vs {}, mean bytes {} vs {}, checkpoint {} vs {}); \
                     remove one before merging",
                    record.id,
                    kept.accuracy,
                    record.accuracy,
                    kept.mean_bytes,
                    record.mean_bytes,
                    kept.checkpoint.display(),
                    record.checkpoint.display()
                )));
            }
            None => {
                by_id.insert(record.id.clone(), record);
            }
        }
    }
    let mut records: Vec<SearchRecord> = by_id.into_values().collect();
    records.sort_by(SearchRecord::grid_order);

    let threshold = baseline_accuracy - tolerance_points;
    let mut per_split: BTreeMap<u32, Vec<&SearchRecord>> = BTreeMap::new();
    for record in &records {
        per_split
            .entry(record.split_index)
            .or_default()
            .push(record);
    }
    let mut chosen = Vec::new();
    let mut unmet = Vec::new();
    for (index, group) in per_split {
        let best = group
            .iter()
            .filter(|r| r.accuracy >= threshold - ACCURACY_EPSILON)
            .min_by(|a, b| {
                a.mean_bytes
                    .total_cmp(&b.mean_bytes)
                    .then_with(|| a.p95_bytes.total_cmp(&b.p95_bytes))
                    .then_with(|| a.id.cmp(&b.id))
            });
        match best {
            Some(record) => chosen.push((*record).clone()),
            None => unmet.push(UnmetSplit {
                split: split_name(index),
                split_index: index,
                configurations: group.len(),
                best_accuracy: group
                    .iter()
                    .map(|r| r.accuracy)
                    .fold(f64::NEG_INFINITY, f64::max),
            }),
        }
    }
    Ok(MergeOutcome {
        baseline_accuracy,
        tolerance_points,
        records,
        chosen,
        unmet,
        duplicates,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
name = "t"
base = "configs/base.toml"
baseline = "runs/baseline"
splits = [3, 1]
c_primes = [2, 1]
ss = [2]
qualities = [20, 10]
[budget]
epochs = 1
"#;

    fn spec() -> SearchSpec {
        SearchSpec::parse(SPEC, Path::new("t.toml")).unwrap()
    }

    fn reason(text: &str) -> String {
        match SearchSpec::parse(text, Path::new("bad.toml")) {
            Err(Error::InvalidParameter(reason)) => reason,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    fn rec(
        split: u32,
        c_prime: u32,
        quality: u8,
        accuracy: f64,
        mean: f64,
        p95: f64,
    ) -> SearchRecord {
        SearchConfig {
            split,
            c_prime,
            s: 2,
            quality,
            mode: SearchMode::Aware,
            codec: DEFAULT_CODEC.into(),
            bits: 8,
        }
        .record(
            Measurement {
                accuracy,
                mean_bytes: mean,
                p95_bytes: p95,
                seconds: 1.0,
            },
            format!("runs/{split}-{c_prime}-{quality}"),
        )
    }

    #[test]
    fn defaults_apply_and_the_spec_round_trips_through_toml() {
        let s = spec();
        assert_eq!(s.codec, "jpeg-abbrev");
        assert_eq!(s.bits, 8);
        assert_eq!(s.modes, [SearchMode::Aware]);
        assert!((s.tolerance_points - 2.0).abs() < 1e-12);
        assert_eq!(s.budget.steps_per_epoch, None);
        let again = SearchSpec::parse(&s.to_toml().unwrap(), Path::new("r.toml")).unwrap();
        assert_eq!(again, s);
        let all = SearchSpec::parse(
            &SPEC.replace("splits = [3, 1]", "splits = \"all\""),
            Path::new("a.toml"),
        )
        .unwrap();
        assert_eq!(all.splits, Splits::All);
        assert!(all.to_toml().unwrap().contains("splits = \"all\""));
    }

    #[test]
    fn grid_order_and_ids_are_fixed() {
        let ids: Vec<_> = spec()
            .grid(16)
            .unwrap()
            .iter()
            .map(SearchConfig::id)
            .collect();
        assert_eq!(
            ids,
            [
                "RB1-c1-s2-q10",
                "RB1-c1-s2-q20",
                "RB1-c2-s2-q10",
                "RB1-c2-s2-q20",
                "RB3-c1-s2-q10",
                "RB3-c1-s2-q20",
                "RB3-c2-s2-q10",
                "RB3-c2-s2-q20",
            ]
        );
        let naive = SearchSpec::parse(
            &SPEC.replace("[budget]", "modes = [\"naive\", \"aware\"]\n[budget]"),
            Path::new("n.toml"),
        )
        .unwrap();
        let grid = naive.grid(16).unwrap();
        assert_eq!(grid.len(), 16);
        assert_eq!(grid[0].id(), "RB1-c1-s2-q10");
        assert_eq!(grid[1].id(), "RB1-c1-s2-q10-naive");
    }

    #[test]
    fn all_expands_to_every_block_and_bad_indices_are_named() {
        let all = SearchSpec::parse(
            &SPEC.replace("splits = [3, 1]", "splits = \"all\""),
            Path::new("a.toml"),
        )
        .unwrap();
        assert_eq!(all.split_indices(16).unwrap(), (1..=16).collect::<Vec<_>>());
        assert_eq!(all.grid(4).unwrap().len(), 4 * 2 * 2);
        let err = spec().grid(2).unwrap_err().to_string();
        assert!(err.contains("split 3 does not exist"), "{err}");
    }

    #[test]
    fn bad_specs_are_rejected_with_the_field_named() {
        assert!(
            reason(&SPEC.replace("c_primes = [2, 1]", "c_primes = []"))
                .contains("c_primes is empty")
        );
        assert!(reason(&SPEC.replace("c_primes = [2, 1]", "c_primes = [2, 2]")).contains("twice"));
        assert!(reason(&SPEC.replace("ss = [2]", "ss = [0]")).contains("ss"));
        assert!(
            reason(&SPEC.replace("qualities = [20, 10]", "qualities = [0]")).contains("1..=100")
        );
        assert!(reason(&SPEC.replace("epochs = 1", "epochs = 0")).contains("budget.epochs"));
        assert!(reason(&format!("{SPEC}\ncolour = 1")).contains("colour"));
        assert!(reason(&SPEC.replace("splits = [3, 1]", "splits = \"some\"")).contains("splits"));
        assert!(reason(&SPEC.replace("name = \"t\"", "name = \"a/b\"")).contains("name"));
        let png = SPEC.replace("[budget]", "codec = \"png\"\n[budget]");
        assert!(reason(&png).contains("lossless"));
        assert!(
            SearchSpec::parse(
                &png.replace("qualities = [20, 10]", "qualities = [0]"),
                Path::new("p.toml")
            )
            .is_ok()
        );
        assert!(
            reason(&SPEC.replace("[budget]", "codec = \"webp\"\n[budget]"))
                .contains("unknown codec")
        );
        assert!(reason(&SPEC.replace("[budget]", "bits = 9\n[budget]")).contains("bits"));
        assert!(
            reason(&SPEC.replace("[budget]", "tolerance_points = -1.0\n[budget]"))
                .contains("tolerance")
        );
    }

    #[test]
    fn shard_strings_parse_or_say_what_is_wrong() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!((s.index(), s.count()), (1, 3));
        assert_eq!(s.to_string(), "1/3");
        assert_eq!(s.file_name(), "shard-1-of-3.jsonl");
        assert_eq!(" 0/1 ".parse::<Shard>().unwrap(), Shard::WHOLE);
        for (text, needle) in [
            ("2/2", "out of range"),
            ("0/0", "at least 1"),
            ("1", "no '/'"),
            ("a/2", "index \"a\""),
            ("1/-2", "count \"-2\""),
            ("", "no '/'"),
        ] {
            let err = text.parse::<Shard>().unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains("INDEX/COUNT"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn merge_keeps_fewest_bytes_within_tolerance_per_split() {
        let records = vec![
            rec(1, 1, 20, 73.0, 100.0, 120.0), // too inaccurate
            rec(1, 2, 20, 74.5, 200.0, 250.0),
            rec(1, 2, 10, 74.0, 200.0, 240.0), // same mean, smaller p95: wins
            rec(2, 1, 20, 60.0, 50.0, 60.0),   // split 2: nothing eligible
            rec(2, 2, 20, 70.0, 80.0, 90.0),
        ];
        let out = merge_records(records, 76.0, 2.0).unwrap();
        assert_eq!(out.chosen.len(), 1);
        assert_eq!(out.chosen[0].id, "RB1-c2-s2-q10");
        assert_eq!(out.unmet.len(), 1);
        assert_eq!(out.unmet[0].split, "RB2");
        assert_eq!(out.unmet[0].configurations, 2);
        assert!((out.unmet[0].best_accuracy - 70.0).abs() < 1e-12);
        // Records come back in grid order.
        let ids: Vec<_> = out.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "RB1-c1-s2-q20",
                "RB1-c2-s2-q10",
                "RB1-c2-s2-q20",
                "RB2-c1-s2-q20",
                "RB2-c2-s2-q20"
            ]
        );
    }

    #[test]
    fn ties_on_bytes_and_p95_go_to_the_smaller_id() {
        let out = merge_records(
            vec![
                rec(1, 2, 20, 76.0, 100.0, 100.0),
                rec(1, 1, 20, 76.0, 100.0, 100.0),
            ],
            76.0,
            0.0,
        )
        .unwrap();
        assert_eq!(out.chosen[0].id, "RB1-c1-s2-q20");
    }

    #[test]
    fn boundary_accuracy_is_eligible() {
        let out = merge_records(vec![rec(1, 1, 20, 74.1, 316.0, 330.0)], 76.1, 2.0).unwrap();
        assert_eq!(out.chosen.len(), 1);
    }

    #[test]
    fn duplicates_are_dropped_and_conflicts_rejected() {
        let a = rec(1, 1, 20, 75.0, 100.0, 110.0);
        let mut slower = a.clone();
        slower.seconds = 99.0;
        let out = merge_records(vec![a.clone(), slower], 76.0, 2.0).unwrap();
        assert_eq!((out.records.len(), out.duplicates), (1, 1));
        let mut other = a.clone();
        other.accuracy = 74.5;
        let err = merge_records(vec![a, other], 76.0, 2.0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RB1-c1-s2-q20") && err.contains("two different records"),
            "{err}"
        );
    }

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
    fn training_results_carry_the_chosen_configurations() {
        let out = merge_records(
            vec![
                rec(3, 2, 20, 75.0, 150.0, 160.0),
                rec(1, 1, 20, 74.5, 300.0, 310.0),
            ],
            76.0,
            2.0,
        )
        .unwrap();
        let results = out
            .training_results(
                "resnet50",
                "mini",
                CloudOnlyResult {
                    bytes: 26_766.0,
                    accuracy: 75.9,
                    quality: None,
                },
            )
            .unwrap();
        let names: Vec<_> = results.splits.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["RB1", "RB3"]);
        assert_eq!(results.splits[1].c_prime, Some(2));
        assert_eq!(results.splits[1].s, Some(2));
        assert!((results.splits[1].bytes - 150.0).abs() < 1e-12);
        assert!((results.mobile_only.accuracy - 76.0).abs() < 1e-12);
        assert!((results.baseline_accuracy - 76.0).abs() < 1e-12);
    }

    #[test]
    fn bad_merge_parameters_are_rejected() {
        assert!(merge_records(Vec::new(), f64::NAN, 2.0).is_err());
        assert!(merge_records(Vec::new(), 76.0, -1.0).is_err());
        assert!(merge(&[] as &[PathBuf], 76.0, 2.0).is_err());
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
