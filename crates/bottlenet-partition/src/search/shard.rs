//! The division of a search grid among machines (`--shard i/N`, round robin over the grid
//! order) and the resume step that skips configurations already finished.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::spec::SearchConfig;
use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
