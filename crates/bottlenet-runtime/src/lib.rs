//! `bottlenet-runtime` owns serving a split network: the gRPC server that runs every split's
//! cloud half (decode, restoration unit, tail — paper §3.1) with dynamic batching, a bounded
//! queue, deadlines, health and Prometheus metrics; and the client library the phone links,
//! which runs the head, uploads the frame, re-selects the split at run time from measured
//! bandwidth and the server's reported load (§3.4), and answers alone when the server is down.
//!
//! It sees models only through the [`CloudHalf`] and [`PhoneHalf`] traits and frames only
//! through `bottlenet-codec`; it must not depend on a deep-learning framework, nor on training
//! code.

mod admission;
mod answer;
mod auth;
mod batcher;
mod route_load;
pub mod client;
mod client_options;
pub mod config;
mod deadline;
pub mod error;
mod link;
mod metrics;
pub mod model;
pub mod pacer;
pub mod policy;
pub mod server;
mod server_stream;
mod stream_client;
pub mod summary;
pub mod uplink;
pub mod uplink_probe;

/// Code generated from `proto/bottlenet.proto`.
#[allow(missing_debug_implementations, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("bottlenet.v1");
}

pub use client::{Answer, Client, ClientOptions, ClientTls, SplitMode, Transport};
pub use error::{Error, Result};
pub use model::{CLOUD_ONLY, ClassScore, CloudHalf, Image, MOBILE_ONLY, PhoneHalf, top_k};
pub use pacer::UplinkPacer;
pub use policy::{Algorithm1, Choice, Observation, ObservedLatency, SplitLoad, SplitPolicy};
pub use server::{Server, ServerConfig, TlsIdentity, check_exposure, shutdown_signal};
pub use summary::{Summary, SummaryReport, percentile};
pub use uplink::UplinkEstimator;
pub use uplink_probe::ProbeStats;
