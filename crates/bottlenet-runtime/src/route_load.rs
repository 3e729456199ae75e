//! The load one route (a split, or cloud-only) reports to phones (paper §3.4: the phone
//! re-chooses its split from the server's load): each batch's service time and its members'
//! mean wait, despiked, smoothed, and forgetting idle time.

use std::time::{Duration, Instant};

/// Smoothed load of one route, as reported to clients (paper §3.4).
///
/// Invariant: the estimate restarts with the route's first batch and with its first batch after
/// an idle gap of [`IDLE_RESTART`] or more: a route nobody used for that long says nothing about
/// the server now, and a phone that left it because it was slow must, on coming back, read what
/// the server does now rather than what it did before it left.
///
/// Invariant: over the first [`WARMUP_BATCHES`] batches after a (re)start the estimate is the
/// median of their raw samples (the lesser middle one of an even count), so one slow batch there
/// — a cold cache, a worker descheduled on a shared host as it wakes — is never the estimate:
/// with one fast batch beside it, the fast one is. A phone re-choosing its split (§3.4) needs
/// several reports in a row to leave a split, so a slow first batch back alone cannot send it
/// away (seen in CI's `netem.sh --adapt`: a phone that came back to a split after an idle gap
/// read its first, stalled batch and left again, once per gap).
///
/// Invariant: after that, each batch's sample is despiked — the median of it and the two batches
/// before it — and then smoothed exponentially (weight [`EWMA_ALPHA`]), so one stalled batch
/// (15 ms among 1.4 ms ones, seen in `netem.sh --adapt`) moves nothing, while a load that lasts
/// two batches passes through.
///
/// Invariant: until the route has served [`WARMUP_BATCHES`] batches in all,
/// [`reported`](Self::reported) says nothing; after an idle gap it reports from the first batch
/// back, so a route used once a second still reports its load.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RouteLoad {
    pub service_us: f64,
    pub queue_us: f64,
    /// Requests served (every member of every batch).
    pub served: u64,
    /// Batches run, in all.
    pub batches: u64,
    /// Raw (service, queue) µs of the batches since the last (re)start, the first
    /// `since_restart` of them (at most [`WARMUP_BATCHES`]): what the estimate is the median of
    /// until the window is full.
    window: [(f64, f64); WARMUP_BATCHES as usize],
    /// Batches since the last (re)start, counted up to [`WARMUP_BATCHES`].
    since_restart: usize,
    /// The last two batches' raw (service, queue) µs, newest last, for the despiking median.
    recent: [(f64, f64); 2],
    /// When the last batch ended.
    last_batch: Option<Instant>,
}

/// Weight of the newest (despiked) sample in the exponential smoothing of the reported load.
const EWMA_ALPHA: f64 = 0.2;

/// Batches a route's load is the median of after a (re)start, and the batches it must have
/// served before it is reported at all: `1 / EWMA_ALPHA`, the smoothing's own memory.
pub(crate) const WARMUP_BATCHES: u64 = 5;

/// An idle gap this long restarts a route's estimate ([`RouteLoad`]).
const IDLE_RESTART: Duration = Duration::from_millis(500);

impl RouteLoad {
    /// Folds in one batch: its service time and its members' mean wait, µs.
    pub(crate) fn record(&mut self, service_us: f64, queue_us: f64, batch_size: usize, now: Instant) {
        let sample = (service_us, queue_us);
        if self
            .last_batch
            .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_RESTART)
        {
            self.since_restart = 0;
        }
        if self.since_restart < self.window.len() {
            self.window[self.since_restart] = sample;
            self.since_restart += 1;
            let window = &self.window[..self.since_restart];
            self.service_us = lower_median(window.iter().map(|s| s.0));
            self.queue_us = lower_median(window.iter().map(|s| s.1));
        } else {
            let [older, newer] = self.recent;
            self.service_us += EWMA_ALPHA * (median3(older.0, newer.0, sample.0) - self.service_us);
            self.queue_us += EWMA_ALPHA * (median3(older.1, newer.1, sample.1) - self.queue_us);
        }
        self.recent = [self.recent[1], sample];
        self.last_batch = Some(now);
        self.batches += 1;
        self.served += batch_size as u64;
    }

    /// Time since the route's last batch (`None`: it has run none).
    pub fn idle(&self, now: Instant) -> Option<Duration> {
        self.last_batch.map(|t| now.saturating_duration_since(t))
    }

    /// The load as clients are told it: zero service and queue time (the protocol's "not
    /// known yet", which phones ignore) until [`WARMUP_BATCHES`] batches have been served.
    pub fn reported(self) -> Self {
        if self.batches >= WARMUP_BATCHES {
            self
        } else {
            Self { service_us: 0.0, queue_us: 0.0, ..self }
        }
    }
}

/// The median of at most [`WARMUP_BATCHES`] values; of an even count, the lesser middle one.
fn lower_median(values: impl Iterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

fn median3(a: f64, b: f64, c: f64) -> f64 {
    a.max(b).min(a.min(b).max(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One slow first batch (10 ms among 1 ms ones) is not the estimate: over the warm-up the
    /// estimate is the median, and nothing is reported before the warm-up ends; then the
    /// smoothing is exponential over despiked samples.
    #[test]
    fn a_routes_load_is_reported_only_after_its_warm_up_median() {
        let mut tick = batches_every(Duration::from_millis(20));
        let mut load = RouteLoad::default();
        load.record(10_000.0, 500.0, 2, tick());
        assert_eq!((load.service_us, load.queue_us), (10_000.0, 500.0), "one batch is its own median");
        for _ in 1..WARMUP_BATCHES {
            assert_eq!((load.reported().service_us, load.reported().queue_us), (0.0, 0.0), "{load:?}");
            load.record(1_000.0, 0.0, 1, tick());
            assert_eq!((load.service_us, load.queue_us), (1_000.0, 0.0), "the lesser middle one: {load:?}");
        }
        let reported = load.reported();
        assert_eq!(reported.batches, WARMUP_BATCHES);
        assert_eq!(reported.served, 2 + (WARMUP_BATCHES - 1));
        assert_eq!((reported.service_us, reported.queue_us), (1_000.0, 0.0), "{reported:?}");
        load.record(3_000.0, 0.0, 1, tick());
        load.record(3_000.0, 0.0, 1, tick());
        let smoothed = 1_000.0 + EWMA_ALPHA * 2_000.0;
        assert!((load.reported().service_us - smoothed).abs() < 1e-9, "{load:?}");
        assert_eq!(lower_median([3.0, 1.0, 2.0, 4.0].into_iter()), 2.0);
        assert_eq!(lower_median(std::iter::empty()), 0.0);
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
    /// batch back: the slow batches before the gap are forgotten.
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
        assert_eq!(load.reported().service_us, 1_400.0, "{load:?}");
        assert_eq!(RouteLoad::default().idle(back), None);
    }

    /// CI's `netem.sh --adapt` (issue 14): a phone comes back to a split after an idle gap and
    /// the first batch back stalls (12 ms among 0.8 ms ones). Only that one batch's report
    /// reads slow, so a phone that needs more than one slow report in a row to leave
    /// (`Reselector`'s confirmations) stays; a server that stays slow reads slow on every batch.
    #[test]
    fn a_stalled_first_batch_after_an_idle_gap_is_reported_once() {
        let mut tick = batches_every(Duration::from_millis(20));
        let mut load = RouteLoad::default();
        for _ in 0..20 {
            load.record(800.0, 30.0, 1, tick());
        }
        let mut back = tick() + Duration::from_secs(3);
        let mut reports = Vec::new();
        for service_us in [12_000.0, 800.0, 800.0, 800.0, 800.0, 800.0, 800.0] {
            load.record(service_us, 30.0, 1, back);
            reports.push(load.reported().service_us);
            back += Duration::from_millis(20);
        }
        assert_eq!(reports, [12_000.0, 800.0, 800.0, 800.0, 800.0, 800.0, 800.0]);
        let mut back = back + Duration::from_secs(3);
        let mut reports = Vec::new();
        for _ in 0..7 {
            load.record(9_000.0, 30.0, 1, back);
            reports.push(load.reported().service_us);
            back += Duration::from_millis(20);
        }
        assert!(reports.iter().all(|&r| (r - 9_000.0).abs() < 1e-9), "a slow server must read slow: {reports:?}");
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
