//! `bottlenet-partition` owns the decision of *where to split*: the wireless up-link and its
//! power model (paper Table 3), measured device profiles and training results as data files,
//! Algorithm 1's profiling-to-selection step (§2.3), and the run-time re-selection of §3.4.
//!
//! It must not depend on a deep-learning framework or on the codec: its inputs are numbers
//! (times, bytes, accuracies), so the phone, the server and the command line can all use it.
//!
//! Units everywhere: times in ms, payloads in bytes, throughput in Mbit/s, up-link power in mW,
//! the phone's compute power `PM` in W, energy in mJ, accuracy in percent.
//!
//! ```
//! use bottlenet_partition::{CandidateCosts, CandidateKind, NetworkPreset, Target, select};
//! let costs = vec![
//!     CandidateCosts { name: "RB1".into(), kind: CandidateKind::Split { index: 1 },
//!                      tm_ms: 1.7, tc_ms: 0.0, bytes: 316.0, accuracy: 74.1 },
//!     CandidateCosts { name: "mobile-only".into(), kind: CandidateKind::MobileOnly,
//!                      tm_ms: 15.7, tc_ms: 0.0, bytes: 0.0, accuracy: 76.1 },
//! ];
//! let network = NetworkPreset::ThreeG.network();
//! let selection = select(&costs, &network, Target::Latency, 1.306, 76.1, 2.0)?;
//! assert_eq!(selection.chosen().candidate, "RB1");
//! println!("{}", selection.render_table());
//! # Ok::<(), bottlenet_partition::Error>(())
//! ```

// Tests unwrap freely: a panic there is a failure report, not a crash on user data.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod atomic;
pub mod candidates;
pub mod error;
mod json_file;
pub mod network;
pub mod profile;
pub mod reselect;
pub mod results;
pub mod search;
pub mod select;

pub use atomic::write_atomic;
pub use candidates::{CLOUD_ONLY, CandidateCosts, CandidateKind, MOBILE_ONLY, wire_bytes};
pub use error::{Error, Result};
pub use network::{Network, NetworkPreset};
pub use profile::{PROFILE_FORMAT, Profile, ProfileEntry, Role};
pub use reselect::{Decision, Observation, ReselectConfig, Reselector};
pub use results::{
    CloudOnlyResult, MobileOnlyResult, RESULTS_FORMAT, SplitResult, TrainingResults,
};
pub use search::{
    Budget, Measurement, MergeOutcome, RecordFile, SearchConfig, SearchMode, SearchRecord,
    SearchSpec, Shard, Splits, UnmetSplit, append_record, finished_ids, finished_ids_in, merge,
    merge_records, read_records, record_files, remaining, shard, split_name,
};
pub use select::{ACCURACY_EPSILON, RankedCandidate, Selection, Target, evaluate, select};
