//! The crate's one error type: every way a network, profile, results file or selection request
//! can be wrong.

use std::path::PathBuf;

/// Why a partitioning input could not be loaded, joined or ranked.
///
/// Every variant names what was wrong (and, for files, which file) in one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON for a {what}: {source}")]
    Json {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid network: {0}")]
    InvalidNetwork(String),
    #[error("unknown network preset {0:?}; expected one of: 3g, 4g, wifi")]
    UnknownPreset(String),
    #[error("unknown selection target {0:?}; expected one of: latency, energy")]
    UnknownTarget(String),
    #[error("invalid profile: {0}")]
    InvalidProfile(String),
    #[error(
        "profile of device {device:?} has role {found}, but a {expected} profile is needed here"
    )]
    WrongRole {
        device: String,
        expected: crate::profile::Role,
        found: crate::profile::Role,
    },
    #[error("invalid results: {0}")]
    InvalidResults(String),
    #[error("profiles do not cover every candidate; missing: {}", .0.join(", "))]
    MissingEntries(Vec<String>),
    #[error("invalid candidate {name:?}: {reason}")]
    InvalidCandidate { name: String, reason: String },
    #[error("invalid selection parameter: {0}")]
    InvalidParameter(String),
    #[error("no candidates to select from")]
    NoCandidates,
    #[error(
        "no candidate reaches the accuracy threshold {threshold} (baseline minus tolerance); the best has {best}"
    )]
    NoEligible { threshold: f64, best: f64 },
    #[error(
        "the run-time re-selector needs a mobile-only candidate to fall back on when the server is unreachable"
    )]
    NoMobileOnly,
    #[error("unknown candidate {0:?}")]
    UnknownCandidate(String),
}

/// Result of every fallible operation in this crate.
pub type Result<T> = std::result::Result<T, Error>;
