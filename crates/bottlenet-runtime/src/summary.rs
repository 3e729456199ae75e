//! A run's summary on the phone side: accuracy, bytes sent, latency percentiles and which path
//! served how many requests.

use std::collections::BTreeMap;

use crate::client::{Answer, server_fault};
use crate::metrics::code_name;
use crate::uplink_probe::ProbeStats;

/// Accumulates answers; [`report`](Self::report) turns them into figures.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    latencies_ms: Vec<f64>,
    /// Sums of the per-stage times: phone, upload, server (ms).
    stage_sums_ms: [f64; 3],
    bytes: Vec<usize>,
    labelled: usize,
    correct: usize,
    fallbacks: usize,
    server_errors: usize,
    fallback_causes: BTreeMap<String, usize>,
    by_path: BTreeMap<String, usize>,
    uplink_probes: ProbeStats,
}

/// The figures of a run (serializable for `--json` output).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SummaryReport {
    pub requests: usize,
    /// Top-1 accuracy over the answers whose label was known.
    pub accuracy: Option<f64>,
    pub total_bytes: usize,
    pub mean_bytes: f64,
    /// Mean end-to-end latency, ms.
    pub mean_ms: f64,
    /// Mean phone compute per request (head + reduction + encode, or the whole network), ms.
    pub mean_phone_ms: f64,
    /// Mean upload per request, ms.
    pub mean_upload_ms: f64,
    /// Mean server time per request (queue + decode + tail), ms.
    pub mean_server_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers that came from the phone because the server path failed.
    pub fallbacks: usize,
    /// Of the fallbacks, those the server answered with an error of its own (INTERNAL,
    /// UNKNOWN) rather than being unreachable, overloaded or too slow: a healthy
    /// run has none.
    pub server_errors: usize,
    /// Fallbacks by the gRPC status of the failed server path (`UNAVAILABLE`, `INTERNAL`, …).
    pub fallback_causes: BTreeMap<String, usize>,
    /// Requests served per path name (`rb1`, `cloud-only`, `mobile-only`, …).
    pub by_path: BTreeMap<String, usize>,
    /// The up-link probes of `--split auto` and the padding they sent (not in `total_bytes`).
    pub uplink_probes: ProbeStats,
}

/// Nearest-rank percentile of `sorted` (ascending), `q` in [0, 1]; NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one answer; `label` is the true class index when known.
    pub fn record(&mut self, answer: &Answer, label: Option<usize>) {
        self.latencies_ms.push(answer.total_ms);
        for (sum, v) in self.stage_sums_ms.iter_mut().zip([answer.tm_ms, answer.upload_ms, answer.tc_ms]) {
            *sum += v;
        }
        self.bytes.push(answer.bytes);
        if let Some(label) = label {
            self.labelled += 1;
            if answer.top_k.first().is_some_and(|c| c.index == label) {
                self.correct += 1;
            }
        }
        if answer.fell_back {
            self.fallbacks += 1;
        }
        if let Some(code) = answer.fallback_status {
            *self
                .fallback_causes
                .entry(code_name(code).to_string())
                .or_default() += 1;
            if server_fault(code) {
                self.server_errors += 1;
            }
        }
        *self
            .by_path
            .entry(answer.served_by.name().to_string())
            .or_default() += 1;
    }

    /// What the client's up-link probes cost over the run ([`crate::Client::uplink_probe_stats`]).
    pub fn record_uplink_probes(&mut self, stats: ProbeStats) {
        self.uplink_probes = stats;
    }

    pub fn report(&self) -> SummaryReport {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let total_bytes: usize = self.bytes.iter().sum();
        let n = self.latencies_ms.len();
        let mean = |sum: f64| if n == 0 { f64::NAN } else { sum / n as f64 };
        SummaryReport {
            requests: n,
            accuracy: (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64),
            total_bytes,
            mean_bytes: if n == 0 {
                0.0
            } else {
                total_bytes as f64 / n as f64
            },
            mean_ms: mean(self.latencies_ms.iter().sum()),
            mean_phone_ms: mean(self.stage_sums_ms[0]),
            mean_upload_ms: mean(self.stage_sums_ms[1]),
            mean_server_ms: mean(self.stage_sums_ms[2]),
            p50_ms: percentile(&sorted, 0.50),
            p95_ms: percentile(&sorted, 0.95),
            p99_ms: percentile(&sorted, 0.99),
            max_ms: sorted.last().copied().unwrap_or(f64::NAN),
            fallbacks: self.fallbacks,
            server_errors: self.server_errors,
            fallback_causes: self.fallback_causes.clone(),
            by_path: self.by_path.clone(),
            uplink_probes: self.uplink_probes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClassScore;
    use crate::policy::Choice;

    fn answer(ms: f64, top: usize, bytes: usize, served_by: Choice, fell_back: bool) -> Answer {
        let fallback_status = fell_back.then_some(tonic::Code::Unavailable);
        Answer {
            request_id: 0,
            top_k: vec![ClassScore {
                index: top,
                label: top.to_string(),
                score: 1.0,
            }],
            served_by,
            fell_back,
            fallback_status,
            tm_ms: 0.0,
            upload_ms: 0.0,
            tc_ms: 0.0,
            total_ms: ms,
            bytes,
            wire_bytes: bytes as f64,
            batch_size: 1,
            reported_tc_ms: 0.0,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.0), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn counts_accuracy_bytes_and_paths() {
        let mut s = Summary::new();
        s.record(
            &answer(1.0, 3, 100, Choice::Split("rb1".into()), false),
            Some(3),
        );
        s.record(&answer(2.0, 4, 0, Choice::MobileOnly, true), Some(5));
        s.record(&answer(3.0, 4, 300, Choice::CloudOnly, false), None);
        let r = s.report();
        assert_eq!(r.requests, 3);
        assert_eq!(r.accuracy, Some(0.5));
        assert_eq!(r.total_bytes, 400);
        assert!((r.mean_bytes - 400.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.p50_ms, 2.0);
        assert!((r.mean_ms - 2.0).abs() < 1e-12);
        assert!(Summary::new().report().mean_ms.is_nan());
        assert_eq!(r.max_ms, 3.0);
        assert_eq!(r.fallbacks, 1);
        assert_eq!(r.by_path.get("rb1"), Some(&1));
        assert_eq!(r.by_path.get("mobile-only"), Some(&1));
        assert_eq!(r.by_path.get("cloud-only"), Some(&1));
        assert_eq!(r.server_errors, 0, "an unreachable server is no server error");
    }

    #[test]
    fn server_errors_are_counted_apart_from_other_fallbacks() {
        let mut s = Summary::new();
        let failed = |code| Answer {
            fallback_status: Some(code),
            ..answer(1.0, 0, 0, Choice::MobileOnly, true)
        };
        s.record(&failed(tonic::Code::Internal), None);
        s.record(&failed(tonic::Code::Internal), None);
        s.record(&failed(tonic::Code::Unavailable), None);
        s.record(&failed(tonic::Code::ResourceExhausted), None);
        s.record(&answer(1.0, 0, 10, Choice::Split("rb1".into()), false), None);
        let r = s.report();
        assert_eq!(r.fallbacks, 4);
        assert_eq!(r.server_errors, 2);
        assert_eq!(r.fallback_causes.get("INTERNAL"), Some(&2));
        assert_eq!(r.fallback_causes.get("UNAVAILABLE"), Some(&1));
        assert_eq!(r.fallback_causes.get("RESOURCE_EXHAUSTED"), Some(&1));
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["server_errors"], 2);
    }
}
