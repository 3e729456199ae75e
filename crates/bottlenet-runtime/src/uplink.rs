//! The up-link throughput `NB` the phone re-selects with (paper §3.4), estimated only from what
//! can honestly be timed.
//!
//! One upload's measured time is `base + 8·bytes/NB`: `base` is what any transfer pays (the
//! round trip's share, framing, scheduling), the second term is the link's serialization. A
//! bottleneck frame of ~130 B takes 55 µs at Wi-Fi's 18.88 Mbit/s, far below `base` (~0.3 ms
//! on loopback, tens of ms on a phone network), so `8·bytes/time` of such a transfer measures
//! the round trip, not the link. Here a transfer moves the estimate only when its serialization
//! is long enough to time — at least [`MIN_TIMEABLE_MS`], expected at the current estimate or
//! seen beyond `base` — and `base` is the quickest recent transfer too small to time. Until such
//! a transfer happens the estimate stays the declared network's rate (the prior).
//!
//! One stall (a descheduled phone, a retransmission) makes one transfer look slow, and the
//! transfers after it are then expected short and no longer timed, so a single sample could
//! lower the estimate for good. A sample therefore moves the estimate only when the timeable
//! transfer before it, with no untimeable one between, saw the link on the same side of the
//! current estimate; it moves to the less extreme of the two.
//!
//! A phone that sends only small frames (or nothing, on mobile-only) would never see its link
//! get faster that way. Under `--split auto` it therefore also probes the link now and then
//! ([`crate::uplink_probe`]): padding sized to take ~10 ms at the current estimate, timed
//! against an empty call, twice ([`UplinkEstimator::record_probe`]).

use std::collections::VecDeque;

/// Serialization time below which a transfer says nothing about the link (ms): well above the
/// jitter of one round trip on a loaded 2-core host and of tokio's 1 ms timer.
pub const MIN_TIMEABLE_MS: f64 = 3.0;
/// Recent transfers whose fastest sets `base`.
const BASE_WINDOW: usize = 32;
/// One sample may move the estimate by at most this factor either way (a burst of scheduling
/// noise must not turn 1 Mbit/s into 1 Gbit/s).
const MAX_STEP: f64 = 10.0;

/// Timeable samples of the up-link, against a prior.
#[derive(Debug, Clone)]
pub struct UplinkEstimator {
    estimate_mbps: Option<f64>,
    small_ms: VecDeque<f64>,
    /// The previous timeable transfer's sample, awaiting a second on the same side.
    pending_mbps: Option<f64>,
}

impl UplinkEstimator {
    /// Starts from the declared network's rate (`None`: no prior, only timeable transfers).
    pub fn new(prior_mbps: Option<f64>) -> Self {
        UplinkEstimator { estimate_mbps: prior_mbps.filter(|m| m.is_finite() && *m > 0.0), small_ms: VecDeque::new(), pending_mbps: None }
    }

    /// The current belief, Mbit/s.
    pub fn estimate_mbps(&self) -> Option<f64> {
        self.estimate_mbps
    }

    /// The fixed part of an upload's time: the quickest recent transfer too small to time.
    pub fn base_ms(&self) -> f64 {
        if self.small_ms.is_empty() {
            return 0.0;
        }
        self.small_ms.iter().copied().fold(f64::INFINITY, f64::min).max(0.0)
    }

    /// Records one upload of `wire_bytes` (what left the interface: payload plus the transport's
    /// overhead) that took `upload_ms`. Returns the new estimate (Mbit/s) when the transfer was
    /// long enough to time and confirmed the one before it (module docs); `None` otherwise (a
    /// small transfer then only refines `base`).
    pub fn record(&mut self, wire_bytes: f64, upload_ms: f64) -> Option<f64> {
        if !(wire_bytes.is_finite() && wire_bytes > 0.0 && upload_ms.is_finite() && upload_ms >= 0.0) {
            return None;
        }
        let base = self.base_ms();
        let expected_ms = self.estimate_mbps.map(|m| 8.0 * wire_bytes / (m * 1e3));
        let beyond_ms = upload_ms - base;
        let timeable = beyond_ms >= MIN_TIMEABLE_MS || expected_ms.is_some_and(|e| e >= MIN_TIMEABLE_MS);
        if !timeable {
            self.small_ms.push_back(upload_ms);
            if self.small_ms.len() > BASE_WINDOW {
                self.small_ms.pop_front();
            }
            self.pending_mbps = None;
            return None;
        }
        self.judge(self.sample_mbps(wire_bytes, beyond_ms, expected_ms))
    }

    /// Records one active probe (crate::uplink_probe): two transfers of `wire_bytes` each whose
    /// `serial_ms` are their serialization alone (the round trip already taken out). A probe is
    /// its own confirmation: it moves the estimate when both samples are long enough to time and
    /// see the link on the same side, to the less extreme of the two; `base` and a pending image
    /// sample are left as they are.
    pub fn record_probe(&mut self, wire_bytes: f64, serial_ms: [f64; 2]) -> Option<f64> {
        if !(wire_bytes.is_finite() && wire_bytes > 0.0) || serial_ms.iter().any(|t| !(t.is_finite() && *t >= 0.0)) {
            return None;
        }
        let expected_ms = self.estimate_mbps.map(|m| 8.0 * wire_bytes / (m * 1e3));
        let timeable = |t: f64| t >= MIN_TIMEABLE_MS || expected_ms.is_some_and(|e| e >= MIN_TIMEABLE_MS);
        if !serial_ms.iter().all(|t| timeable(*t)) {
            return None;
        }
        let [first, second] = serial_ms.map(|t| self.sample_mbps(wire_bytes, t, expected_ms));
        let Some(current) = self.estimate_mbps else {
            let sample = first.min(second);
            self.estimate_mbps = Some(sample);
            return Some(sample);
        };
        let below = second < current;
        ((first < current) == below).then(|| {
            let confirmed = if below { first.max(second) } else { first.min(second) };
            self.estimate_mbps = Some(confirmed);
            confirmed
        })
    }

    /// Mbit/s that `wire_bytes` sent in `serial_ms` of serialization show, within MAX_STEP of the
    /// current estimate. A transfer expected to be long that finished at once: the link is
    /// faster than believed, by at most MAX_STEP per sample.
    fn sample_mbps(&self, wire_bytes: f64, serial_ms: f64, expected_ms: Option<f64>) -> f64 {
        let serial_ms = serial_ms.max(expected_ms.map_or(0.0, |e| e / MAX_STEP)).max(1e-3);
        let sample = 8.0 * wire_bytes / (serial_ms * 1e3);
        match self.estimate_mbps {
            Some(current) => sample.clamp(current / MAX_STEP, current * MAX_STEP),
            None => sample,
        }
    }

    /// One timeable image transfer's sample against the pending one (module docs).
    fn judge(&mut self, sample: f64) -> Option<f64> {
        let Some(current) = self.estimate_mbps else {
            // No belief to protect: the first timed transfer is the estimate.
            self.estimate_mbps = Some(sample);
            return Some(sample);
        };
        let below = sample < current;
        // Pairs do not overlap: a confirmed pair is spent, and the next sample is judged
        // against the new estimate afresh.
        match self.pending_mbps.take() {
            Some(previous) if (previous < current) == below => {
                let confirmed = if below { previous.max(sample) } else { previous.min(sample) };
                self.estimate_mbps = Some(confirmed);
                Some(confirmed)
            }
            _ => {
                self.pending_mbps = Some(sample);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link of `mbps` with a fixed `base_ms` per transfer.
    fn upload_ms(bytes: f64, mbps: f64, base_ms: f64) -> f64 {
        base_ms + 8.0 * bytes / (mbps * 1e3)
    }

    #[test]
    fn small_frames_never_move_the_prior() {
        // Regression (issue #14): 130 B frames on loopback read as ~0.5 Mbit/s on an 18.88 link.
        let mut e = UplinkEstimator::new(Some(18.88));
        for _ in 0..100 {
            assert_eq!(e.record(130.0, upload_ms(130.0, 18.88, 2.0)), None);
        }
        assert_eq!(e.estimate_mbps(), Some(18.88));
        assert!((e.base_ms() - upload_ms(130.0, 18.88, 2.0)).abs() < 1e-9);
    }

    #[test]
    fn long_transfers_measure_the_link_less_the_fixed_part() {
        let mut e = UplinkEstimator::new(Some(5.85));
        for _ in 0..5 {
            e.record(130.0, upload_ms(130.0, 1.1, 2.0));
        }
        // 26,766 B (the paper's cloud-only JPEG) over 1.1 Mbit/s: 194.7 ms beyond base. The
        // first such transfer waits for a second to confirm it.
        assert_eq!(e.record(26_766.0, upload_ms(26_766.0, 1.1, 2.0)), None);
        let sample = e.record(26_766.0, upload_ms(26_766.0, 1.1, 2.0)).expect("timeable");
        // base is the small frames' full time (their own 0.95 ms serialization included).
        assert!((sample - 1.1).abs() / 1.1 < 0.01, "{sample}");
    }

    #[test]
    fn a_transfer_that_takes_long_is_timed_even_when_expected_short() {
        let mut e = UplinkEstimator::new(Some(100.0));
        e.record(100.0, 1.0);
        // 2,000 B expected at 0.16 ms took 16 ms beyond base: the link is ~1 Mbit/s, but one
        // sample moves the belief by at most 10×, and only once a second one agrees.
        assert_eq!(e.record(2_000.0, 17.0), None);
        let sample = e.record(2_000.0, 17.0).expect("timeable");
        assert!((sample - 10.0).abs() < 1e-9, "{sample}");
        assert_eq!(e.record(2_000.0, 17.0), None);
        let sample = e.record(2_000.0, 17.0).expect("timeable");
        assert!((sample - 1.0).abs() < 1e-9, "{sample}");
    }

    #[test]
    fn one_stall_does_not_lower_the_estimate_for_good() {
        // Wi-Fi, cloud-only JPEGs of 709 B (0.3 ms of serialization, never timed) with one
        // 6 ms stall: without confirmation the estimate would drop to 1.9 Mbit/s and stay there.
        let mut e = UplinkEstimator::new(Some(18.88));
        for _ in 0..10 {
            assert_eq!(e.record(709.0, upload_ms(709.0, 18.88, 0.5)), None);
        }
        assert_eq!(e.record(709.0, 6.5), None, "a lone stall is not a sample");
        for _ in 0..10 {
            assert_eq!(e.record(709.0, upload_ms(709.0, 18.88, 0.5)), None);
        }
        assert_eq!(e.estimate_mbps(), Some(18.88));
        // The link really drops to 1.1 Mbit/s: every transfer is slow, the second confirms.
        assert_eq!(e.record(709.0, upload_ms(709.0, 1.1, 0.5)), None);
        let moved = e
            .record(709.0, upload_ms(709.0, 1.1, 0.5))
            .expect("confirmed");
        assert!(
            (moved - 1.888).abs() < 1e-9,
            "at most 10x per step: {moved}"
        );
        assert_eq!(e.record(709.0, upload_ms(709.0, 1.1, 0.5)), None);
        let moved = e
            .record(709.0, upload_ms(709.0, 1.1, 0.5))
            .expect("confirmed");
        // base holds the small JPEGs' own 0.3 ms: a little fast, never slow.
        assert!(moved >= 1.1 && moved < 1.1 * 1.1, "{moved}");
        // Samples on both sides of the estimate do not move it.
        let current = e.estimate_mbps().unwrap();
        assert_eq!(e.record(709.0, upload_ms(709.0, 0.5, 0.5)), None);
        assert_eq!(e.record(709.0, upload_ms(709.0, 1.8, 0.5)), None);
        assert_eq!(e.estimate_mbps(), Some(current));
    }

    #[test]
    fn without_a_prior_only_slow_transfers_count_and_nonsense_is_ignored() {
        let mut e = UplinkEstimator::new(None);
        assert_eq!(e.record(600.0, 0.4), None);
        assert_eq!(e.estimate_mbps(), None);
        assert_eq!(e.record(f64::NAN, 1.0), None);
        assert_eq!(e.record(600.0, -1.0), None);
        let sample = e.record(6_000.0, 0.4 + 48.0).expect("timeable");
        assert!((sample - 1.0).abs() < 1e-9, "{sample}");
    }

    #[test]
    fn a_probe_sees_a_faster_link_that_small_frames_never_show() {
        // Issue 14: RB1's 171 B frames on a 3G prior, the link now Wi-Fi. Only probes move it.
        let mut e = UplinkEstimator::new(Some(1.1));
        for _ in 0..50 {
            assert_eq!(e.record(171.0, upload_ms(171.0, 18.88, 0.5)), None);
        }
        assert_eq!(e.estimate_mbps(), Some(1.1));
        // Padding for 10 ms at 1.1 Mbit/s (1,375 B) takes 0.58 ms at 18.88: at most 10x a step.
        let serial = 8.0 * 1_375.0 / 18.88e3;
        let moved = e.record_probe(1_375.0, [serial, serial * 1.05]).expect("a faster link");
        assert!((moved - 11.0).abs() < 1e-9, "{moved}");
        // The next probe is sized for 10 ms at 11 Mbit/s (13,750 B) and times the link itself.
        let serial = 8.0 * 13_750.0 / 18.88e3;
        let moved = e.record_probe(13_750.0, [serial * 1.02, serial]).expect("timeable");
        assert!((moved - 18.88 / 1.02).abs() < 1e-6, "the less extreme of the two: {moved}");
    }

    #[test]
    fn a_probe_moves_only_when_both_halves_agree_and_can_be_timed() {
        let mut e = UplinkEstimator::new(Some(5.85));
        // One half slower, one faster than the estimate: no move.
        let at = |mbps: f64| 8.0 * 7_000.0 / (mbps * 1e3);
        assert_eq!(e.record_probe(7_000.0, [at(4.0), at(8.0)]), None);
        assert_eq!(e.estimate_mbps(), Some(5.85));
        // Both slower: the less extreme (the faster) of the two.
        let moved = e.record_probe(7_000.0, [at(1.2), at(1.0)]).expect("both slower");
        assert!((moved - 1.2).abs() < 1e-9, "{moved}");
        // Padding too small to time at the estimate, finished at once: says nothing.
        assert_eq!(e.record_probe(100.0, [0.2, 0.3]), None);
        assert_eq!(e.record_probe(f64::NAN, [5.0, 5.0]), None);
        assert_eq!(e.record_probe(7_000.0, [-1.0, 5.0]), None);
        assert_eq!(e.estimate_mbps(), Some(1.2));
    }
}
