//! Test fixtures shared by the search module's unit tests.

use super::{DEFAULT_CODEC, Measurement, SearchConfig, SearchMode, SearchRecord};

/// A finished aware configuration at `s = 2` with the given figures; its checkpoint path names
/// split, `c'` and quality.
pub(super) fn rec(
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
