//! What the phone's client returns for one image: the top-k classes, the path that answered,
//! and where its time and bytes went (paper §3.4: the phone re-chooses the split from these).

use crate::model::ClassScore;
use crate::policy::Choice;
use tonic::Code;

/// The answer to one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub request_id: u64,
    pub top_k: Vec<ClassScore>,
    /// The path that produced this answer.
    pub served_by: Choice,
    /// True when the path needed the server and the phone answered alone instead: this
    /// request's server path failed, or the server was already known to be unusable (never
    /// reached, down since an earlier failure).
    pub fell_back: bool,
    /// When it fell back: the gRPC status of the failure (this request's, or the last one that
    /// put the server out of use).
    pub fallback_status: Option<Code>,
    /// Phone compute (ms): head + reduction + encode, and the whole network when it answered.
    pub tm_ms: f64,
    /// Measured upload time (ms): pacing plus the round trip less the server's own time.
    pub upload_ms: f64,
    /// Server-reported queue + decode + tail time (ms).
    pub tc_ms: f64,
    /// Wall time of the whole request (ms).
    pub total_ms: f64,
    /// Payload bytes sent up by the path that answered (0 when the phone answered).
    pub bytes: usize,
    /// What left the interface for it, as the client counts it: payload plus the transport's
    /// per-image overhead ([`ClientOptions::wire_overhead_bytes`]); 0 when the phone answered.
    pub wire_bytes: f64,
    /// Size of the server batch this request ran in (0 when the phone answered).
    pub batch_size: u32,
    /// The server's smoothed queue + service time of this path, as reported with the answer
    /// (ms): the `TC` the split policy was told (0 when the phone answered).
    pub reported_tc_ms: f64,
}
