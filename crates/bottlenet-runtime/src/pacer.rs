//! Uplink emulation: a token bucket with no burst allowance, so a frame of `b` bytes occupies
//! the emulated link for `8·b / rate` seconds and frames queue behind each other as on one real
//! uplink. Used to make the paper's 3G / 4G / Wi-Fi uplinks (Table 3) real time on loopback.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// Granularity of tokio's timer wheel.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct UplinkPacer {
    rate_mbps: f64,
    /// When the emulated link finishes sending everything accepted so far.
    busy_until: Mutex<Option<Instant>>,
}

impl UplinkPacer {
    pub fn new(rate_mbps: f64) -> Result<Self> {
        if !(rate_mbps.is_finite() && rate_mbps > 0.0) {
            return Err(Error::Config(format!(
                "uplink rate must be a positive number of Mbps, got {rate_mbps}"
            )));
        }
        Ok(UplinkPacer {
            rate_mbps,
            busy_until: Mutex::new(None),
        })
    }

    pub fn rate_mbps(&self) -> f64 {
        self.rate_mbps
    }

    /// Time the link needs for `bytes`: `8·bytes / rate`.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(8.0 * bytes as f64 / (self.rate_mbps * 1e6))
    }

    /// Waits until `bytes` would have left the emulated link; returns how long it waited.
    pub async fn send(&self, bytes: usize) -> Duration {
        let start = Instant::now();
        let done = {
            let mut busy = self
                .busy_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let begin = busy.map_or(start, |b| b.max(start));
            let done = begin + self.transmit_time(bytes);
            *busy = Some(done);
            done
        };
        // tokio's timer has millisecond resolution, and a bottleneck frame on Wi-Fi takes tens
        // of microseconds: sleep to within a millisecond of `done`, then yield until it passes.
        if let Some(coarse) = done.checked_sub(TIMER_RESOLUTION)
            && coarse > Instant::now()
        {
            tokio::time::sleep_until(coarse).await;
        }
        while Instant::now() < done {
            tokio::task::yield_now().await;
        }
        start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_time_matches_the_paper_3g_figure() {
        // DESIGN §3: 26,766 B over 3G (1.1 Mbps) takes ≈ 194.7 ms.
        let p = UplinkPacer::new(1.1).expect("rate");
        assert!((p.transmit_time(26_766).as_secs_f64() * 1e3 - 194.66).abs() < 0.01);
        assert!(UplinkPacer::new(0.0).is_err());
        assert!(UplinkPacer::new(f64::NAN).is_err());
    }

    #[tokio::test]
    async fn frames_queue_behind_each_other() {
        let p = std::sync::Arc::new(UplinkPacer::new(8.0).expect("rate")); // 1 byte per µs
        let (a, b) = tokio::join!(p.send(3000), p.send(3000));
        // Never shorter than the link needs; the second frame waits for the first.
        assert!(a.min(b) >= Duration::from_micros(3000), "{a:?} {b:?}");
        assert!(a.max(b) >= Duration::from_micros(6000), "{a:?} {b:?}");
    }

    #[tokio::test]
    async fn sub_millisecond_frames_are_not_rounded_to_the_timer() {
        // 100 frames of 250 µs each take 25 ms paced exactly; each tokio sleep rounds up to the
        // 1 ms timer. Compared as a ratio within one run, not against a deadline.
        let p = UplinkPacer::new(8.0).expect("rate");
        let start = Instant::now();
        for _ in 0..100 {
            p.send(250).await;
        }
        let paced = start.elapsed();
        let start = Instant::now();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
        let timer = start.elapsed();
        assert!(paced >= Duration::from_micros(25_000), "{paced:?}");
        assert!(paced < timer, "paced {paced:?} is no finer than the 1 ms timer ({timer:?})");
    }
}
