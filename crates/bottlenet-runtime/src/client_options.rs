//! How a [`Client`](crate::Client) is set up: the path choice, TLS, token, deadlines, probing.

use std::sync::Arc;
use std::time::Duration;

use crate::pacer::UplinkPacer;
use crate::policy::SplitPolicy;

/// How the client picks the path of each request.
pub enum SplitMode {
    /// Always this split point.
    Fixed(String),
    CloudOnly,
    MobileOnly,
    /// Ask the policy before every request (paper §3.4 run-time re-selection).
    Auto(Box<dyn SplitPolicy>),
}

impl std::fmt::Debug for SplitMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitMode::Fixed(s) => f.debug_tuple("Fixed").field(s).finish(),
            SplitMode::CloudOnly => f.write_str("CloudOnly"),
            SplitMode::MobileOnly => f.write_str("MobileOnly"),
            SplitMode::Auto(_) => f.write_str("Auto(..)"),
        }
    }
}

/// How images travel to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    /// One long-lived `InferStream` per client, one small message per image (DESIGN §1); an
    /// older server without it gets one request per image instead.
    #[default]
    Stream,
    /// One unary `Infer`/`InferImage` request per image, HTTP/2 headers and all.
    Unary,
}

/// TLS towards the server: a private CA (PEM) and/or the name to check the certificate for.
/// Without a CA the system's roots are used.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    pub ca_pem: Option<Vec<u8>>,
    pub domain: Option<String>,
}

#[derive(Debug)]
pub struct ClientOptions {
    pub mode: SplitMode,
    /// Classes returned per answer.
    pub top_k: u32,
    /// Deadline of each request (sent to the server as `grpc-timeout`, enforced here too).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub token: Option<String>,
    /// TLS; also implied by an `https://` URL.
    pub tls: Option<ClientTls>,
    /// While the server is unreachable, probe it after this many requests…
    pub probe_every: u32,
    /// …or after this long, whichever comes first (paper §3.4: "periodically pinging the server").
    pub probe_interval: Duration,
    /// JPEG quality of the input image on the cloud-only path.
    pub jpeg_quality: u8,
    /// Emulated uplink; `None` sends at the real link's speed.
    pub pacer: Option<Arc<UplinkPacer>>,
    pub transport: Transport,
    /// Bytes the transport adds to every image beyond its payload (the cloud profile's
    /// `wire_overhead_bytes`): what the up-link estimate and the policies count per image.
    pub wire_overhead_bytes: f64,
    /// The declared network's up-link (Mbit/s): the prior that only transfers long enough to
    /// time can move ([`crate::uplink::UplinkEstimator`]).
    pub declared_uplink_mbps: Option<f64>,
    /// With [`SplitMode::Auto`]: probe the up-link this often ([`crate::uplink_probe`]), so a
    /// link that got faster is seen while only small frames (or none) are sent; zero: never.
    pub uplink_probe_interval: Duration,
}

impl ClientOptions {
    pub fn new(mode: SplitMode) -> Self {
        ClientOptions {
            mode,
            top_k: 5,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            token: None,
            tls: None,
            probe_every: 16,
            probe_interval: Duration::from_millis(500),
            jpeg_quality: 90,
            pacer: None,
            transport: Transport::Stream,
            wire_overhead_bytes: 0.0,
            declared_uplink_mbps: None,
            uplink_probe_interval: Duration::from_secs(1),
        }
    }
}
