//! The load one route (a split, or cloud-only) reports to phones (paper §3.4: the phone
//! re-chooses its split from the server's load): each batch's service time and its members'
//! mean wait, despiked, smoothed, and forgetting idle time.

use std::time::{Duration, Instant};

/// Smoothed load of one route, as reported to clients (paper §3.4).
///
/// Invariant: each batch's sample is first despiked — the median of it and the two batches
/// before it (the lesser of two while there are only two) — so one stalled batch (a worker
/// descheduled on a shared host: 15 ms among 1.4 ms ones, seen in `netem.sh --adapt`) moves
/// nothing, while a load that lasts two batches passes through. A phone re-choosing its split
/// (§3.4) would otherwise leave a split for one stall and, no longer sending there, never see
/// the stall end.
///
/// Invariant: after an idle gap the new batch weighs `1 − e^(−gap/IDLE_MEMORY)` at least (and is
/// not despiked against the batches before the gap): a route nobody used for seconds says
/// nothing about the server now, and a phone that left it because it was slow must, on coming
/// back, read what the server does now rather than what it did before it left.
///
/// Invariant: the first [`WARMUP_BATCHES`] batches are averaged with equal weight (a running
/// mean), and only then does the exponential smoothing take over; until that many batches have
/// been served, [`reported`](Self::reported) says nothing. One slow first batch — a cold cache,
/// a core busy elsewhere for a moment — would otherwise be the whole estimate, then decay by
/// only `1 − EWMA_ALPHA` per batch, and a phone re-choosing its split (§3.4) would read a
/// server several times slower than it is for its first few images.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RouteLoad {
    pub service_us: f64,
    pub queue_us: f64,
    /// Requests served (every member of every batch).
    pub served: u64,
    /// Batches run: the samples the smoothing has seen.
    pub batches: u64,
    /// The last batches' raw (service, queue) µs, newest last, for the despiking median.
    recent: [(f64, f64); 2],
    /// When the last batch ended.
    last_batch: Option<Instant>,
}

/// Weight of the newest sample in the exponential smoothing of the reported load.
const EWMA_ALPHA: f64 = 0.2;

/// Batches a route's load is averaged over before it is reported: `1 / EWMA_ALPHA`, the
/// smoothing's own memory.
pub(crate) const WARMUP_BATCHES: u64 = 5;

/// Time constant of the smoothing's memory across idle gaps (module docs of [`RouteLoad`]).
const IDLE_MEMORY: Duration = Duration::from_millis(500);

impl RouteLoad {
    /// Folds in one batch: its service time and its members' mean wait, µs.
    pub(crate) fn record(&mut self, service_us: f64, queue_us: f64, batch_size: usize, now: Instant) {
        let sample = (service_us, queue_us);
        let gap = self.last_batch.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let after_idle = gap >= IDLE_MEMORY;
        let [older, newer] = self.recent;
        let (service_us, queue_us) = match self.batches {
            _ if after_idle => sample,
            0 => sample,
            1 => (newer.0.min(sample.0), newer.1.min(sample.1)),
            _ => (median3(older.0, newer.0, sample.0), median3(older.1, newer.1, sample.1)),
        };
        self.recent = if after_idle { [sample, sample] } else { [newer, sample] };
        self.last_batch = Some(now);
        self.batches += 1;
        let forgotten = 1.0 - (-gap.as_secs_f64() / IDLE_MEMORY.as_secs_f64()).exp();
        let weight = EWMA_ALPHA.max(1.0 / self.batches as f64).max(forgotten);
        self.service_us += weight * (service_us - self.service_us);
        self.queue_us += weight * (queue_us - self.queue_us);
        self.served += batch_size as u64;
    }

    /// Time since the route's last batch (`None`: it has run none).
    pub fn idle(&self, now: Instant) -> Option<Duration> {
        self.last_batch.map(|t| now.saturating_duration_since(t))
    }

    /// The load as clients are told it: zero service and queue time (the protocol's "not
    /// known yet", which phones ignore) until [`WARMUP_BATCHES`] batches have been averaged.
    pub fn reported(self) -> Self {
        if self.batches >= WARMUP_BATCHES {
            self
        } else {
            Self { service_us: 0.0, queue_us: 0.0, ..self }
        }
    }
}

fn median3(a: f64, b: f64, c: f64) -> f64 {
    a.max(b).min(a.min(b).max(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One slow first batch (10 ms among 1 ms ones) is averaged with equal weight over the
    /// warm-up and nothing is reported before it ends; then the smoothing is exponential.
    #[test]
    fn a_routes_load_is_reported_only_after_its_warm_up_average() {
        let mut tick = batches_every(Duration::from_millis(20));
        let mut load = RouteLoad::default();
        load.record(10_000.0, 500.0, 2, tick());
        for _ in 1..WARMUP_BATCHES {
            assert_eq!((load.reported().service_us, load.reported().queue_us), (0.0, 0.0), "{load:?}");
            load.record(1_000.0, 0.0, 1, tick());
        }
        let reported = load.reported();
        assert_eq!(reported.batches, WARMUP_BATCHES);
        assert_eq!(reported.served, 2 + (WARMUP_BATCHES - 1));
        let mean = (10_000.0 + 1_000.0 * (WARMUP_BATCHES - 1) as f64) / WARMUP_BATCHES as f64;
        assert!((reported.service_us - mean).abs() < 1e-9, "{reported:?}");
        assert!((reported.queue_us - 500.0 / WARMUP_BATCHES as f64).abs() < 1e-9, "{reported:?}");
        load.record(1_000.0, 0.0, 1, tick());
        let smoothed = mean + EWMA_ALPHA * (1_000.0 - mean);
        assert!((load.reported().service_us - smoothed).abs() < 1e-9, "{load:?}");
    }

    /// Batch end times `step` apart.
    fn batches_every(step: Duration) -> impl FnMut() -> Instant {
        let mut now = Instant::now();
        move || {
            now += step;
            now
        }
    }

    /// Issue 14 (`netem.sh --adapt`): a route slow for five batches, then left for two seconds
    /// (the phone went mobile-only because of it), reads as the server is now on its first
    /// batch back: the slow batches before the gap have been all but forgotten.
    #[test]
    fn after_an_idle_gap_the_first_batch_back_speaks_for_the_server() {
        let mut tick = batches_every(Duration::from_millis(20));
        let mut load = RouteLoad::default();
        for _ in 0..20 {
            load.record(1_400.0, 0.0, 1, tick());
        }
        for _ in 0..5 {
            load.record(5_000.0, 0.0, 1, tick());
        }
        let slow = load.reported().service_us;
        assert!(slow > 3_000.0, "{load:?}");
        let back = tick() + Duration::from_secs(2);
        assert_eq!(load.idle(back).map(|d| d.as_millis()), Some(2_020));
        load.record(1_400.0, 0.0, 1, back);
        let forgotten = 1.0 - (-2.02f64 / IDLE_MEMORY.as_secs_f64()).exp();
        let expected = slow + forgotten * (1_400.0 - slow);
        assert!((load.reported().service_us - expected).abs() < 1e-6, "{load:?}");
        assert!(load.reported().service_us < 1_400.0 * 1.5, "{load:?}");
        assert_eq!(RouteLoad::default().idle(back), None);
    }

    /// Issue 14 (`netem.sh --adapt`): one stalled batch among steady ones leaves the report as
    /// it was; a load that lasts shows after its second batch.
    #[test]
    fn one_stalled_batch_does_not_move_the_reported_load_a_lasting_one_does() {
        let mut tick = batches_every(Duration::from_millis(20));
        let mut load = RouteLoad::default();
        for _ in 0..20 {
            load.record(1_400.0, 50.0, 1, tick());
        }
        let steady = load.reported();
        assert!((steady.service_us - 1_400.0).abs() < 1e-9, "{steady:?}");
        load.record(15_000.0, 3_000.0, 1, tick());
        load.record(1_400.0, 50.0, 1, tick());
        load.record(1_400.0, 50.0, 1, tick());
        assert!((load.reported().service_us - 1_400.0).abs() < 1e-9, "{load:?}");
        assert!((load.reported().queue_us - 50.0).abs() < 1e-9, "{load:?}");
        load.record(12_000.0, 10_000.0, 1, tick());
        assert!((load.reported().service_us - 1_400.0).abs() < 1e-9, "the first loaded batch alone: {load:?}");
        load.record(12_000.0, 10_000.0, 1, tick());
        let moved = load.reported();
        assert!((moved.service_us - (1_400.0 + EWMA_ALPHA * 10_600.0)).abs() < 1e-9, "{moved:?}");
        assert!(moved.queue_us > 50.0 + EWMA_ALPHA * 9_000.0, "{moved:?}");
        assert!((median3(3.0, 1.0, 2.0) - 2.0).abs() < 1e-12 && (median3(1.0, 2.0, 3.0) - 2.0).abs() < 1e-12);
        assert!((median3(2.0, 3.0, 1.0) - 2.0).abs() < 1e-12 && (median3(5.0, 5.0, 1.0) - 5.0).abs() < 1e-12);
    }
}
