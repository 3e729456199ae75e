//! The search file (`configs/search/<name>.toml`) and the grid it spans: Algorithm 1 lines
//! 19–21 (paper §2.3), every split × `c'` × `s` × quality × mode in a fixed order.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::records::{Measurement, SearchRecord};
use super::{
    DEFAULT_BITS, DEFAULT_CODEC, DEFAULT_QUALITY, DEFAULT_TOLERANCE_POINTS, LOSSLESS_CODECS,
    LOSSY_CODECS, split_name,
};
use crate::error::{Error, Result};

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
}
