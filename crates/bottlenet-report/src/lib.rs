//! `bottlenet-report` owns the evaluation report of `bottlenet report`: the paper's Table 4
//! (every split on every network: bytes, latency, energy) and Table 5 (mobile-only, cloud-only
//! and the best split per network, with the improvements) as Markdown and CSV, and PNG plots in
//! the manner of Fig. 6 (feature size per split), Fig. 7 (accuracy against bytes, aware and
//! naive training) and of latency and energy per split per network.
//!
//! Its numbers come from `bottlenet-partition` (Algorithm 1's selection, §2.3); it draws with
//! plotters' bitmap backend and an embedded font, so it needs no system fonts. It must not
//! depend on a deep-learning framework, the codec or the model.
//!
//! ```no_run
//! use bottlenet_report::{ReportInputs, write_report};
//! let inputs = ReportInputs::load(
//!     "profiles/paper-resnet50-results.json",
//!     "profiles/paper-tx2-mobile.json",
//!     "profiles/paper-1080ti-cloud.json",
//! )?;
//! let files = write_report(&inputs, "report")?;
//! for path in &files.written { println!("wrote {}", path.display()); }
//! for skip in &files.skipped { println!("skipped {}: {}", skip.item, skip.reason); }
//! # Ok::<(), bottlenet_report::Error>(())
//! ```

// Tests unwrap freely: a panic there is a failure report, not a crash on user data.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod inputs;
pub mod plot;
pub mod report;
pub mod tables;

pub use error::{Error, Result};
pub use inputs::{
    AccuracyPoint, DEFAULT_MOBILE_POWER_W, DEFAULT_PLOT_SIZE, FeatureSizeRow, FeatureSizes,
    NamedNetwork, ReportInputs,
};
pub use plot::{BreakdownBar, Metric, breakdown_png};
pub use report::{ReportFiles, Skipped, write_report};
pub use tables::{NetworkCosts, OverallChoice, Setup, Table4Row, Table5Row, Tables};
