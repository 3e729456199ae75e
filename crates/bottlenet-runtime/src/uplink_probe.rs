//! Active probes of the phone's up-link under `--split auto` (paper §3.4: the re-selection reads
//! the measured up-link throughput `NB`).
//!
//! A bottleneck frame is too small to time on the link ([`crate::uplink`]), so a phone that sends
//! only frames — or nothing, on mobile-only — would never see its link get faster, and would stay
//! on a split that a faster link no longer favours. Every `interval` the client therefore probes:
//! two pairs of unary `Status` calls, each pair an empty call and then one padded with bytes whose
//! serialization at the current estimate is [`PROBE_SERIAL_MS`]. Both calls of a pair pay the
//! same round trip, framing and server time, so their difference is the padding's serialization
//! alone. Each of the probe's two samples is the quickest padded call of two less the quickest
//! empty one of two (`CALLS_PER_SAMPLE`), and the two samples must agree before the estimate
//! moves ([`UplinkEstimator::record_probe`](crate::UplinkEstimator::record_probe)).
//!
//! The policy may decline a probe (`SplitPolicy::wants_uplink_probe`):
//! Algorithm 1 does while the path in use sends the most bytes, where only a slower link could
//! change the choice and that path's own uploads time it.
//!
//! The probe's status answer also carries the server's load on the splits in recent use, so a
//! phone that is not sending there (mobile-only, because the server was busy) still learns
//! whether others keep it busy (`link::fresh_loads`).
//!
//! Cost: about 4·[`PROBE_SERIAL_MS`] of the link per probe at the estimated rate (4 % at one
//! probe a second), more once when the link has just become slower than believed. Images sent
//! while a probe is in flight share the link with it, so they are not taken as samples.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::{Request, Status};

use crate::error::{Error, Result};
use crate::link::{Rpc, SharedPolicy, fresh_loads, lock};
use crate::pacer::UplinkPacer;
use crate::policy::Observation;
use crate::proto::{StatusReply, StatusRequest};
use crate::uplink::UplinkEstimator;

/// Serialization a probe's padding is sized for at the current estimate (ms): long enough to
/// time against a round trip's jitter ([`crate::uplink::MIN_TIMEABLE_MS`]), short enough that a
/// probe a second costs the link about 4 %.
pub const PROBE_SERIAL_MS: f64 = 10.0;
/// Empty and padded calls per sample; a sample is the quickest padded one less the quickest
/// empty one. A stall (a delayed ACK: 40 ms on loopback, ~10 ms on the shaped veth, seen in
/// about one call in three) only ever adds time, so the minimum drops it unless it hit every
/// call of a kind.
const CALLS_PER_SAMPLE: usize = 2;
/// Padded calls in one probe (two samples).
const CALLS_PER_PROBE: usize = 2 * CALLS_PER_SAMPLE;
/// Padding bounds (bytes): below the minimum even a slow link's padding is one small segment;
/// above the maximum a fast link's probe would hold more than a few TCP windows' worth.
const MIN_PADDING_BYTES: usize = 256;
const MAX_PADDING_BYTES: usize = 64 * 1024;
/// Per TCP segment at a 1,500 B MTU: Ethernet (14), IPv4 (20) and TCP with timestamps (32)
/// headers, and the payload that fits beside them.
const SEGMENT_HEADER_BYTES: f64 = 66.0;
const SEGMENT_PAYLOAD_BYTES: f64 = 1448.0;

/// What the probes have cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProbeStats {
    /// Probes finished (each four padded and four empty calls).
    pub probes: u64,
    /// Padding sent by them, bytes.
    pub padding_bytes: u64,
}

/// When to probe, and whether an image's upload shared the link with a probe.
#[derive(Debug)]
pub(crate) struct UplinkProber {
    /// Zero: never.
    interval: Duration,
    state: Mutex<ProbeState>,
}

#[derive(Debug)]
struct ProbeState {
    last_start: Instant,
    in_flight: bool,
    /// Bumped as a probe starts and as it ends.
    epoch: u64,
    /// Half the server's message limit, once its status is known.
    max_padding: usize,
    stats: ProbeStats,
}

/// The prober as an image's upload began ([`UplinkProber::overlapped`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UploadStart {
    epoch: u64,
    in_flight: bool,
}

impl UplinkProber {
    /// The first probe is due `interval` after this.
    pub fn new(interval: Duration) -> Self {
        UplinkProber {
            interval,
            state: Mutex::new(ProbeState {
                last_start: Instant::now(),
                in_flight: false,
                epoch: 0,
                max_padding: MAX_PADDING_BYTES,
                stats: ProbeStats::default(),
            }),
        }
    }

    /// Keeps the padding within the server's message limit (its `Status` reports it).
    pub fn limit_padding(&self, server_max_message_bytes: u64) {
        let half = usize::try_from(server_max_message_bytes / 2).unwrap_or(usize::MAX);
        lock(&self.state).max_padding = half.clamp(MIN_PADDING_BYTES, MAX_PADDING_BYTES);
    }

    /// True, and the probe counts as started, when one is due and none is in flight.
    pub fn start_if_due(&self) -> bool {
        let mut s = lock(&self.state);
        if self.interval.is_zero() || s.in_flight || s.last_start.elapsed() < self.interval {
            return false;
        }
        s.in_flight = true;
        s.epoch += 1;
        s.last_start = Instant::now();
        true
    }

    /// Ends the probe started last; `padding_bytes` is what it sent (0 when it sent nothing).
    pub fn finish(&self, padding_bytes: usize) {
        let mut s = lock(&self.state);
        s.in_flight = false;
        s.epoch += 1;
        if padding_bytes > 0 {
            s.stats.probes += 1;
            s.stats.padding_bytes += padding_bytes as u64;
        }
    }

    pub fn upload_start(&self) -> UploadStart {
        let s = lock(&self.state);
        UploadStart { epoch: s.epoch, in_flight: s.in_flight }
    }

    /// Whether a probe was on the link at any time since `start`.
    pub fn overlapped(&self, start: &UploadStart) -> bool {
        let s = lock(&self.state);
        start.in_flight || s.in_flight || s.epoch != start.epoch
    }

    /// Padding whose serialization at `estimate_mbps` is [`PROBE_SERIAL_MS`], within bounds.
    pub fn padding_for(&self, estimate_mbps: f64) -> usize {
        let max = lock(&self.state).max_padding;
        let bytes = estimate_mbps * 1e3 * PROBE_SERIAL_MS / 8.0;
        if !bytes.is_finite() {
            return max;
        }
        (bytes.round() as usize).clamp(MIN_PADDING_BYTES, max)
    }

    pub fn stats(&self) -> ProbeStats {
        lock(&self.state).stats
    }
}

/// What one background probe needs from the client.
pub(crate) struct ProbeTask {
    pub rpc: Rpc,
    pub pacer: Option<Arc<UplinkPacer>>,
    pub timeout: Duration,
    pub model: String,
    pub uplink: Arc<Mutex<UplinkEstimator>>,
    pub prober: Arc<UplinkProber>,
    pub policy: SharedPolicy,
}

/// Runs the probe [`UplinkProber::start_if_due`] started: sized at the current estimate,
/// recorded by the estimator, and told to the policy when it moved the estimate. Each of its
/// status answers that carries fresh loads is told as it arrives: a probe's eight calls can take
/// longer than a load report lives ([`crate::policy::REPORT_TTL`]) on a slow link to a busy
/// server, and a report held back to the probe's end would let a split that others keep busy
/// expire and be tried again for nothing. A failed probe is only logged: the image path finds
/// out about an unusable server on its own.
pub(crate) async fn probe_and_tell(task: ProbeTask) {
    let ProbeTask { rpc, pacer, timeout, model, uplink, prober, policy } = task;
    let Some(estimate) = lock(&uplink).estimate_mbps() else {
        prober.finish(0);
        return;
    };
    let padding = prober.padding_for(estimate);
    let mut tell_loads = |status: &StatusReply| {
        let loads = fresh_loads(status, &model);
        if !loads.is_empty() {
            lock(&policy).observe(&Observation {
                reachable: true,
                queue_depth: Some(status.queue_depth),
                loads,
                ..Observation::default()
            });
        }
    };
    match probe_uplink(&rpc, pacer.as_deref(), timeout, padding, &mut tell_loads).await {
        Ok((serial_ms, status)) => {
            let moved = lock(&uplink).record_probe(padding_wire_bytes(padding), serial_ms);
            tracing::debug!(padding, ?serial_ms, estimate, ?moved, "up-link probe");
            if moved.is_some() {
                lock(&policy).observe(&Observation {
                    reachable: true,
                    uplink_mbps: moved,
                    queue_depth: Some(status.queue_depth),
                    ..Observation::default()
                });
            }
            prober.finish(CALLS_PER_PROBE * padding);
        }
        Err(e) => {
            tracing::debug!(error = %e, "up-link probe failed");
            prober.finish(0);
        }
    }
}

/// What `padding` bytes add on the phone's interface: the bytes and their segments' headers.
pub(crate) fn padding_wire_bytes(padding: usize) -> f64 {
    let padding = padding as f64;
    padding + (padding / SEGMENT_PAYLOAD_BYTES).ceil() * SEGMENT_HEADER_BYTES
}

/// One probe: the padding's serialization (ms) in each of two empty/padded pairs, and the
/// server's last status. `on_status` sees every call's answer as it arrives (their loads are
/// news too: `link::fresh_loads`).
pub(crate) async fn probe_uplink(
    rpc: &Rpc,
    pacer: Option<&UplinkPacer>,
    timeout: Duration,
    padding: usize,
    on_status: &mut (dyn FnMut(&StatusReply) + Send),
) -> Result<([f64; 2], StatusReply)> {
    let mut serial_ms = [0.0; 2];
    let mut last = StatusReply::default();
    for serial in &mut serial_ms {
        let (mut empty, mut padded) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..CALLS_PER_SAMPLE {
            let (ms, status) = timed_status(rpc, pacer, timeout, 0).await?;
            on_status(&status);
            empty = empty.min(ms);
            let (ms, status) = timed_status(rpc, pacer, timeout, padding).await?;
            on_status(&status);
            padded = padded.min(ms);
            last = status;
        }
        *serial = (padded - empty).max(0.0);
    }
    Ok((serial_ms, last))
}

/// Wall time (ms) of one `Status` call carrying `padding` bytes, the emulated link's pacing
/// included, and its answer.
async fn timed_status(rpc: &Rpc, pacer: Option<&UplinkPacer>, timeout: Duration, padding: usize) -> Result<(f64, StatusReply)> {
    let start = Instant::now();
    if let Some(pacer) = pacer {
        pacer.send(padding).await;
    }
    let mut req = Request::new(StatusRequest { padding: vec![0; padding] });
    req.set_timeout(timeout);
    let reply = tokio::time::timeout(timeout, rpc.clone().status(req))
        .await
        .map_err(|_| Error::Rpc(Status::deadline_exceeded("up-link probe timed out")))??;
    Ok((start.elapsed().as_secs_f64() * 1e3, reply.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_takes_ten_ms_at_the_estimate_within_the_servers_limit() {
        let prober = UplinkProber::new(Duration::from_secs(1));
        assert_eq!(prober.padding_for(1.1), 1_375);
        assert_eq!(prober.padding_for(18.88), 23_600);
        assert_eq!(prober.padding_for(1_000.0), MAX_PADDING_BYTES);
        assert_eq!(prober.padding_for(0.01), MIN_PADDING_BYTES);
        prober.limit_padding(16_384);
        assert_eq!(prober.padding_for(18.88), 8_192);
        // One 1,375 B padding is one segment's worth: 66 B of headers on top.
        assert!((padding_wire_bytes(1_375) - 1_441.0).abs() < 1e-9);
    }

    #[test]
    fn an_upload_that_shared_the_link_with_a_probe_is_flagged() {
        let prober = UplinkProber::new(Duration::ZERO);
        assert!(!prober.start_if_due(), "interval zero: never");
        let prober = UplinkProber::new(Duration::from_millis(1));
        let before = prober.upload_start();
        assert!(!prober.overlapped(&before));
        std::thread::sleep(Duration::from_millis(2));
        assert!(prober.start_if_due());
        assert!(!prober.start_if_due(), "one probe at a time");
        assert!(prober.overlapped(&before), "a probe started during the upload");
        let during = prober.upload_start();
        prober.finish(2_750);
        assert!(prober.overlapped(&during), "the upload began while a probe was in flight");
        let after = prober.upload_start();
        assert!(!prober.overlapped(&after));
        assert_eq!(prober.stats(), ProbeStats { probes: 1, padding_bytes: 2_750 });
    }
}
