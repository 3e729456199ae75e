//! The hook through which the phone re-selects its split at run time (paper §3.4): the client
//! asks a [`SplitPolicy`] what to do for each request and tells it what every request and every
//! server probe showed. Two policies come with it: [`Algorithm1`], which drives
//! `bottlenet-partition`'s [`Reselector`] (profiled costs, Algorithm 1 selection with
//! hysteresis), and [`ObservedLatency`], built on measurements alone.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use bottlenet_partition::reselect::Observation as Seen;
use bottlenet_partition::{Decision, Reselector};

use crate::model::{CLOUD_ONLY, MOBILE_ONLY};

/// Where one request's network runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Choice {
    /// Head on the phone up to this split point, tail on the server.
    Split(String),
    /// JPEG of the input image to the server, the whole network there.
    CloudOnly,
    /// The whole network on the phone, nothing sent.
    MobileOnly,
}

impl Choice {
    /// `"cloud-only"`, `"mobile-only"` or the split's name.
    pub fn name(&self) -> &str {
        match self {
            Choice::Split(s) => s,
            Choice::CloudOnly => CLOUD_ONLY,
            Choice::MobileOnly => MOBILE_ONLY,
        }
    }

    /// The inverse of [`name`](Self::name).
    pub fn from_name(name: &str) -> Choice {
        match name {
            CLOUD_ONLY => Choice::CloudOnly,
            MOBILE_ONLY => Choice::MobileOnly,
            split => Choice::Split(split.to_string()),
        }
    }

    /// True when the choice needs the server.
    pub fn uses_server(&self) -> bool {
        !matches!(self, Choice::MobileOnly)
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The server's smoothed timings for one split (or cloud-only), as it reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitLoad {
    pub split: String,
    /// Decode + restoration + tail of a batch, smoothed (ms): the paper's `TC_j` under the
    /// current load.
    pub service_ms: f64,
    /// Time waiting in the server queue, smoothed (ms).
    pub queue_ms: f64,
}

impl SplitLoad {
    /// The load as the protocol carries it (µs); `None` while the server does not know it yet
    /// (both times 0: fewer than 5 batches of the split averaged, `bottlenet.proto`'s `Load`),
    /// so no policy takes "not known" for "free".
    pub fn from_reported(split: &str, smoothed_service_us: u64, smoothed_queue_us: u64) -> Option<Self> {
        (smoothed_service_us > 0 || smoothed_queue_us > 0).then(|| SplitLoad {
            split: split.to_string(),
            service_ms: smoothed_service_us as f64 / 1e3,
            queue_ms: smoothed_queue_us as f64 / 1e3,
        })
    }
}

/// What one request (or one server probe) showed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Observation {
    /// The path that answered this request; `None` for a probe of the server.
    pub served_by: Option<Choice>,
    /// Whether the server answered (a probe, or a request that needed it).
    pub reachable: bool,
    /// Payload bytes sent up for this request.
    pub bytes: usize,
    /// What left the interface for it: payload plus the transport's per-image overhead. The
    /// `D_j` that `TU_j = 8·D_j/NB` counts (DESIGN §1), here as in Algorithm 1's costs.
    pub wire_bytes: f64,
    /// Phone compute time (ms): head + reduction + encode, or the whole network.
    pub tm_ms: Option<f64>,
    /// Measured upload time (ms), pacing included.
    pub upload_ms: Option<f64>,
    /// A measured uplink throughput sample (Mbit/s): the paper's `NB`, from a transfer long
    /// enough to time ([`crate::uplink::UplinkEstimator`]); `None` for the usual small frame.
    pub uplink_mbps: Option<f64>,
    /// Server-reported queue + service time of this request (ms).
    pub tc_ms: Option<f64>,
    /// Requests waiting in the server queue when it answered.
    pub queue_depth: Option<u32>,
    /// Server-reported smoothed load: the request's own split, or every split after a probe.
    pub loads: Vec<SplitLoad>,
}

/// Chooses where each request runs, learning from what requests and probes show.
///
/// The client never asks the policy while the server is unreachable (it answers mobile-only
/// then), but still tells it every observation, reachable or not.
pub trait SplitPolicy: Send {
    fn choose(&mut self) -> Choice;
    fn observe(&mut self, observation: &Observation);
    /// Told once the server's status is known: the paths both the phone and the server hold
    /// (then cloud-only, mobile-only). A policy must never choose another.
    fn restrict(&mut self, available: &[Choice]) {
        let _ = available;
    }
    /// Whether an up-link probe ([`crate::uplink_probe`]) could tell this policy something its
    /// requests do not; the client skips the probes it declines.
    fn wants_uplink_probe(&self) -> bool {
        true
    }
}

/// The paper's policy: Algorithm 1's selection phase over profiled costs, re-run at run time
/// from the measured uplink throughput, the server's reported service times and its
/// reachability, with `bottlenet-partition`'s hysteresis. Candidate names are the runtime's
/// (`rb1`, `cloud-only`, `mobile-only`).
#[derive(Debug, Clone)]
pub struct Algorithm1 {
    reselector: Reselector,
    last: Option<Decision>,
    /// When each candidate's server time was last reported (an answer, or a status whose
    /// split was in recent use): older than [`REPORT_TTL`], it expires.
    reported_at: HashMap<String, Instant>,
}

/// How long a server-time report speaks for the server: two of the up-link probe's status
/// calls (one a second, `ClientOptions::uplink_probe_interval`) refresh a split others keep
/// busy in that time, so a loaded server stays known as loaded, while a path nobody uses any
/// more loses its old report and is tried again (paper §3.4: the choice follows the load both
/// ways).
pub const REPORT_TTL: Duration = Duration::from_secs(2);

impl Algorithm1 {
    pub fn new(reselector: Reselector) -> Self {
        Algorithm1 {
            reselector,
            last: None,
            reported_at: HashMap::new(),
        }
    }

    /// Lets reports older than [`REPORT_TTL`] go (Reselector's `ReportExpired`).
    fn expire_reports(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .reported_at
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) > REPORT_TTL)
            .map(|(name, _)| name.clone())
            .collect();
        for candidate in expired {
            self.reported_at.remove(&candidate);
            tracing::debug!(%candidate, "server time report expired");
            self.feed(Seen::ReportExpired { candidate });
        }
    }

    pub fn reselector(&self) -> &Reselector {
        &self.reselector
    }

    /// The re-selector's decision after the latest observation.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.last.as_ref()
    }

    fn feed(&mut self, seen: Seen) {
        match self.reselector.observe(seen) {
            Ok(decision) => {
                if decision.changed {
                    tracing::info!(chosen = %decision.chosen, "split re-selected");
                }
                self.last = Some(decision);
            }
            // A load report for a split the cost table does not hold, or a degenerate sample:
            // nothing to learn from it.
            Err(err) => tracing::debug!(%err, "observation ignored"),
        }
    }
}

impl SplitPolicy for Algorithm1 {
    fn choose(&mut self) -> Choice {
        self.expire_reports(Instant::now());
        Choice::from_name(self.reselector.current())
    }

    /// Not while the path in use sends the most bytes of all: a faster link cannot make another
    /// path win then (`TU` falls most for the path in use), and a slower one shows in its own
    /// uploads, which are the largest. Mobile-only sends nothing, so it is probed (the link and,
    /// through the status, the server's load).
    fn wants_uplink_probe(&self) -> bool {
        !self.reselector.current_sends_most()
    }

    fn restrict(&mut self, available: &[Choice]) {
        match self.reselector.retain(|name| available.iter().any(|c| c.name() == name)) {
            Ok(removed) if !removed.is_empty() => {
                tracing::warn!(?removed, chosen = self.reselector.current(), "Algorithm 1 candidates the phone's bundle or the server lack are left out");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "could not restrict Algorithm 1's candidates"),
        }
    }

    fn observe(&mut self, obs: &Observation) {
        if obs.reachable != self.reselector.server_reachable() {
            self.feed(if obs.reachable {
                Seen::ServerReachable
            } else {
                Seen::ServerUnreachable
            });
        }
        if let Some(mbps) = obs.uplink_mbps.filter(|m| m.is_finite() && *m > 0.0) {
            self.feed(Seen::Uplink { mbps });
        }
        for load in &obs.loads {
            let tc_ms = load.service_ms + load.queue_ms;
            if tc_ms.is_finite() && tc_ms > 0.0 {
                self.reported_at.insert(load.split.clone(), Instant::now());
                self.feed(Seen::ServiceTime {
                    candidate: load.split.clone(),
                    tc_ms,
                });
            }
        }
    }
}

/// A policy driven by measurements only: it estimates each candidate's end-to-end latency as
/// `TM_j + 8·D_j/NB + TC_j` (Algorithm 1, selection for minimum latency) from smoothed
/// observations — `TM_j` and `D_j` from the candidate's own requests, `NB` from every upload,
/// `TC_j` from the server's reports — tries each candidate once, then keeps the best, moving
/// only when another is better by `hysteresis` (a fraction, e.g. 0.1) to avoid flapping.
#[derive(Debug, Clone)]
pub struct ObservedLatency {
    candidates: Vec<Choice>,
    hysteresis: f64,
    current: Option<Choice>,
    stats: HashMap<Choice, CandidateStats>,
    uplink_mbps: Option<f64>,
    /// Every `explore_every` decisions the least recently measured candidate is re-measured.
    explore_every: u64,
    decisions: u64,
}

#[derive(Debug, Clone, Default)]
struct CandidateStats {
    tm_ms: Option<f64>,
    bytes: Option<f64>,
    tc_ms: Option<f64>,
    last_measured: u64,
}

const SMOOTHING: f64 = 0.2;

fn smooth(old: Option<f64>, new: f64) -> Option<f64> {
    Some(old.map_or(new, |o| o + SMOOTHING * (new - o)))
}

impl ObservedLatency {
    /// The declared network's up-link (Mbit/s) as the throughput until a timeable transfer
    /// measures it; without it a candidate that sends waits for such a transfer.
    pub fn with_uplink_prior(mut self, mbps: f64) -> Self {
        if mbps.is_finite() && mbps > 0.0 {
            self.uplink_mbps = Some(mbps);
        }
        self
    }

    pub fn new(candidates: Vec<Choice>, hysteresis: f64) -> Self {
        ObservedLatency {
            candidates,
            hysteresis: hysteresis.max(0.0),
            current: None,
            stats: HashMap::new(),
            uplink_mbps: None,
            explore_every: 200,
            decisions: 0,
        }
    }

    /// Estimated end-to-end latency of a candidate (ms), when all its terms are known.
    pub fn estimate_ms(&self, choice: &Choice) -> Option<f64> {
        let s = self.stats.get(choice)?;
        let tm = s.tm_ms?;
        if !choice.uses_server() {
            return Some(tm);
        }
        let upload = 8.0 * s.bytes? / (self.uplink_mbps? * 1e3);
        Some(tm + upload + s.tc_ms?)
    }
}

impl SplitPolicy for ObservedLatency {
    fn restrict(&mut self, available: &[Choice]) {
        self.candidates.retain(|c| available.contains(c));
        if self.current.as_ref().is_some_and(|c| !available.contains(c)) {
            self.current = None;
        }
    }

    fn choose(&mut self) -> Choice {
        self.decisions += 1;
        if let Some(unseen) = self
            .candidates
            .iter()
            .find(|c| self.estimate_ms(c).is_none())
        {
            return unseen.clone();
        }
        if self.decisions.is_multiple_of(self.explore_every)
            && let Some(stalest) = self
                .candidates
                .iter()
                .min_by_key(|c| self.stats.get(c).map_or(0, |s| s.last_measured))
        {
            return stalest.clone();
        }
        let best = self
            .candidates
            .iter()
            .filter_map(|c| self.estimate_ms(c).map(|e| (c, e)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((best, best_ms)) = best else {
            return Choice::MobileOnly;
        };
        let keep = self.current.as_ref().and_then(|cur| {
            let cur_ms = self.estimate_ms(cur)?;
            (best_ms >= cur_ms * (1.0 - self.hysteresis)).then(|| cur.clone())
        });
        let chosen = keep.unwrap_or_else(|| best.clone());
        self.current = Some(chosen.clone());
        chosen
    }

    fn observe(&mut self, obs: &Observation) {
        if let Some(mbps) = obs.uplink_mbps.filter(|m| m.is_finite() && *m > 0.0) {
            self.uplink_mbps = smooth(self.uplink_mbps, mbps);
        }
        for load in &obs.loads {
            let entry = self
                .stats
                .entry(Choice::from_name(&load.split))
                .or_default();
            entry.tc_ms = smooth(entry.tc_ms, load.service_ms + load.queue_ms);
        }
        let Some(choice) = &obs.served_by else { return };
        let decisions = self.decisions;
        let entry = self.stats.entry(choice.clone()).or_default();
        entry.last_measured = decisions;
        if let Some(tm) = obs.tm_ms {
            entry.tm_ms = smooth(entry.tm_ms, tm);
        }
        if choice.uses_server() && obs.reachable {
            entry.bytes = smooth(entry.bytes, obs.wire_bytes);
            if let Some(tc) = obs.tc_ms {
                entry.tc_ms = smooth(entry.tc_ms, tc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(choice: Choice, tm: f64, bytes: usize, mbps: f64, tc: f64) -> Observation {
        Observation {
            served_by: Some(choice),
            reachable: true,
            bytes,
            wire_bytes: bytes as f64,
            tm_ms: Some(tm),
            upload_ms: Some(8.0 * bytes as f64 / (mbps * 1e3)),
            uplink_mbps: Some(mbps),
            tc_ms: Some(tc),
            queue_depth: Some(0),
            loads: vec![],
        }
    }

    fn paper_costs() -> Vec<bottlenet_partition::CandidateCosts> {
        use bottlenet_partition::{CandidateCosts, CandidateKind};
        // Paper Tables 4–5 (3G): RB1 316 B, cloud-only 26,766 B, mobile-only 15.7 ms.
        vec![
            CandidateCosts {
                name: "rb1".into(),
                kind: CandidateKind::Split { index: 1 },
                tm_ms: 0.8,
                tc_ms: 0.1,
                bytes: 316.0,
                accuracy: 74.1,
            },
            CandidateCosts {
                name: CLOUD_ONLY.into(),
                kind: CandidateKind::CloudOnly,
                tm_ms: 0.0,
                tc_ms: 1.0,
                bytes: 26_766.0,
                accuracy: 76.1,
            },
            CandidateCosts {
                name: MOBILE_ONLY.into(),
                kind: CandidateKind::MobileOnly,
                tm_ms: 15.7,
                tc_ms: 0.0,
                bytes: 0.0,
                accuracy: 76.1,
            },
        ]
    }

    #[test]
    fn algorithm1_follows_reachability_and_server_load() {
        use bottlenet_partition::{NetworkPreset, ReselectConfig, Target};
        let config = ReselectConfig::new(Target::Latency, 1.3, 76.1, 2.0);
        let reselector = Reselector::new(paper_costs(), NetworkPreset::ThreeG.network(), config)
            .expect("reselector");
        let mut p = Algorithm1::new(reselector);
        assert_eq!(p.choose(), Choice::Split("rb1".into()));
        p.observe(&Observation {
            reachable: false,
            ..Default::default()
        });
        assert_eq!(p.choose(), Choice::MobileOnly);
        p.observe(&Observation {
            reachable: true,
            ..Default::default()
        });
        assert_eq!(p.choose(), Choice::Split("rb1".into()));
        // The server reports RB1's tail taking 40 ms: mobile-only (15.7 ms) wins once confirmed.
        let loaded = Observation {
            reachable: true,
            loads: vec![SplitLoad {
                split: "rb1".into(),
                service_ms: 30.0,
                queue_ms: 10.0,
            }],
            ..Default::default()
        };
        for _ in 0..ReselectConfig::DEFAULT_CONFIRMATIONS {
            p.observe(&loaded);
        }
        assert_eq!(p.choose(), Choice::MobileOnly);
        // Unknown splits in a report are ignored, not fatal.
        p.observe(&Observation {
            reachable: true,
            loads: vec![SplitLoad {
                split: "rb9".into(),
                service_ms: 1.0,
                queue_ms: 0.0,
            }],
            ..Default::default()
        });
        assert_eq!(p.choose(), Choice::MobileOnly);
    }

    #[test]
    fn names_round_trip() {
        for c in [
            Choice::CloudOnly,
            Choice::MobileOnly,
            Choice::Split("rb1".into()),
        ] {
            assert_eq!(Choice::from_name(c.name()), c);
        }
    }

    #[test]
    fn explores_then_picks_the_paper_optimum_on_3g() {
        // Paper Table 5, 3G (1.1 Mbps): RB1 sends 316 B, cloud-only 26,766 B, mobile-only 15.7 ms.
        let rb1 = Choice::Split("rb1".into());
        let mut p = ObservedLatency::new(
            vec![rb1.clone(), Choice::CloudOnly, Choice::MobileOnly],
            0.1,
        );
        for _ in 0..3 {
            let c = p.choose();
            let obs = match &c {
                Choice::Split(_) => served(c.clone(), 0.9, 316, 1.1, 0.3),
                Choice::CloudOnly => served(c.clone(), 0.5, 26_766, 1.1, 1.0),
                Choice::MobileOnly => Observation {
                    served_by: Some(c.clone()),
                    tm_ms: Some(15.7),
                    ..Default::default()
                },
            };
            p.observe(&obs);
        }
        assert_eq!(p.choose(), rb1);
        // TU for cloud-only: 8·26766/1.1 Mbps ≈ 194.7 ms (DESIGN §3).
        let cloud = p.estimate_ms(&Choice::CloudOnly).expect("measured");
        assert!((cloud - (0.5 + 194.661_818 + 1.0)).abs() < 1e-3, "{cloud}");
    }

    #[test]
    fn server_load_pushes_work_to_the_phone_with_hysteresis() {
        let rb1 = Choice::Split("rb1".into());
        let mut p = ObservedLatency::new(vec![rb1.clone(), Choice::MobileOnly], 0.1);
        p.observe(&served(rb1.clone(), 1.0, 300, 20.0, 2.0));
        p.observe(&Observation {
            served_by: Some(Choice::MobileOnly),
            tm_ms: Some(10.0),
            ..Default::default()
        });
        assert_eq!(p.choose(), rb1);
        // A loaded server reports a long service time: after smoothing, mobile-only wins.
        let load = |ms: f64| Observation {
            reachable: true,
            loads: vec![SplitLoad {
                split: "rb1".into(),
                service_ms: ms,
                queue_ms: 0.0,
            }],
            ..Default::default()
        };
        p.observe(&load(9.0));
        // rb1 ≈ 1 + 0.12 + (2 + 0.2·7 = 3.4) ≈ 4.5 ms, still best.
        assert_eq!(p.choose(), rb1);
        for _ in 0..20 {
            p.observe(&load(50.0));
        }
        assert_eq!(p.choose(), Choice::MobileOnly);
    }
}
