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
//!
//! One concept per file: `spec` (the search file and its grid), `shard` (the division among
//! machines and resume), `records` (record files), `merge` (the per-split choice). Everything
//! public is re-exported here, so paths are `bottlenet_partition::search::X`.

mod merge;
mod records;
mod shard;
mod spec;

#[cfg(test)]
mod fixtures;

pub use merge::{MergeOutcome, UnmetSplit, merge, merge_records};
pub use records::{
    Measurement, RecordFile, SearchRecord, append_record, finished_ids, finished_ids_in,
    read_records, record_files,
};
pub use shard::{Shard, remaining, shard};
pub use spec::{Budget, SearchConfig, SearchMode, SearchSpec, Splits};

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
