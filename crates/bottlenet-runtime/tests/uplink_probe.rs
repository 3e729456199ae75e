//! Issue 14: under `--split auto` a phone that sends only bottleneck frames — too small to time
//! on the link — still sees its link get faster, through its up-link probes
//! (`uplink_probe.rs`); without probes it keeps the declared rate for good. The link is the
//! client's emulated one (`UplinkPacer`), Wi-Fi's 18.88 Mbit/s, declared as 3G's 1.1. And a
//! phone off the server hears, from every status answer of its probes, that others keep a split
//! busy.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottlenet_runtime::{Choice, Client, ClientOptions, CloudHalf, Observation, SplitMode, SplitPolicy, UplinkPacer};
use common::*;

const LIMIT: Duration = Duration::from_secs(60);
const WIFI_MBPS: f64 = 18.88;
const THREE_G_MBPS: f64 = 1.1;

/// Always the first split; remembers every up-link sample it was told.
#[derive(Debug)]
struct Recording {
    uplink_mbps: Arc<Mutex<Vec<f64>>>,
}

impl SplitPolicy for Recording {
    fn choose(&mut self) -> Choice {
        Choice::Split(SPLITS[0].0.into())
    }

    fn observe(&mut self, observation: &Observation) {
        if let Some(mbps) = observation.uplink_mbps {
            self.uplink_mbps.lock().expect("samples").push(mbps);
        }
    }
}

/// Sends `n` images at a camera's pace (20 ms) through a client probing every `probe_every`;
/// returns the up-link samples the policy was told and the probes' count.
async fn run(probe_every: Duration, n: usize) -> (Vec<f64>, u64) {
    let server = start(loopback_config(), Arc::new(FakeCloud::new()) as Arc<dyn CloudHalf>).await;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut options = ClientOptions::new(SplitMode::Auto(Box::new(Recording { uplink_mbps: Arc::clone(&samples) })));
    options.declared_uplink_mbps = Some(THREE_G_MBPS);
    options.pacer = Some(Arc::new(UplinkPacer::new(WIFI_MBPS).expect("Wi-Fi")));
    options.uplink_probe_interval = probe_every;
    let client = Client::connect(&server.url(), Arc::new(FakePhone::new()), options).await.expect("connect");
    for image in &images(n, 51) {
        let answer = client.infer(image).await.expect("answer");
        assert_eq!(answer.served_by, Choice::Split(SPLITS[0].0.into()), "{answer:?}");
        assert!(!answer.fell_back, "{answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let probes = client.uplink_probe_stats();
    server.stop().await.expect("clean stop");
    let samples = samples.lock().expect("samples").clone();
    (samples, probes.probes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_show_a_faster_link_that_small_frames_never_time() {
    tokio::time::timeout(LIMIT, async {
        let (samples, probes) = run(Duration::from_millis(100), 60).await;
        assert!(probes >= 3, "{probes} probes in about 1.5 s at one per 100 ms");
        // From the 1.1 Mbit/s prior at most 10x a probe, then the link itself: the last sample
        // is Wi-Fi's rate within what scheduling on a shared host can add to a 10 ms transfer.
        let last = *samples.last().unwrap_or_else(|| panic!("no up-link sample in {probes} probes"));
        assert!(samples.iter().all(|m| *m > THREE_G_MBPS), "a probe read the link slower than declared: {samples:?}");
        assert!((9.0..=WIFI_MBPS * 1.3).contains(&last), "last sample {last} Mbit/s (link {WIFI_MBPS}): {samples:?}");

        // The same run without probes: the frames alone never move the prior.
        let (samples, probes) = run(Duration::ZERO, 30).await;
        assert_eq!((samples.as_slice(), probes), (&[][..], 0));
    })
    .await
    .expect("test finishes in time");
}

/// Mobile-only for good (a phone that left the server because it was busy); counts the probes'
/// status answers that told it the load of the split another phone keeps busy.
#[derive(Debug)]
struct WatchingLoad {
    load_reports: Arc<Mutex<usize>>,
}

impl SplitPolicy for WatchingLoad {
    fn choose(&mut self) -> Choice {
        Choice::MobileOnly
    }

    fn observe(&mut self, observation: &Observation) {
        if observation.loads.iter().any(|l| l.split == SPLITS[0].0) {
            *self.load_reports.lock().expect("reports") += 1;
        }
    }
}

/// A probe is eight status calls; on a slow link to a busy server they take longer than a load
/// report lives (`REPORT_TTL`), so each answer's load is told as it arrives, not once at the
/// probe's end: a phone off the split still hears that others keep it busy between probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_answer_of_a_probe_tells_the_load_it_carries() {
    tokio::time::timeout(LIMIT, async {
        let server = start(loopback_config(), Arc::new(FakeCloud::slow(Duration::from_millis(2))) as Arc<dyn CloudHalf>).await;
        // Another phone keeps the first split busy for the whole run.
        let busy = Client::connect(&server.url(), Arc::new(FakePhone::new()), ClientOptions::new(SplitMode::Fixed(SPLITS[0].0.into())))
            .await
            .expect("connect the loading phone");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let loading = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                for image in images(200, 7).iter().cycle() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    busy.infer(image).await.expect("the loading phone's answer");
                }
            }
        });

        let load_reports = Arc::new(Mutex::new(0));
        let mut options = ClientOptions::new(SplitMode::Auto(Box::new(WatchingLoad { load_reports: Arc::clone(&load_reports) })));
        options.declared_uplink_mbps = Some(THREE_G_MBPS);
        options.pacer = Some(Arc::new(UplinkPacer::new(THREE_G_MBPS).expect("3G")));
        options.uplink_probe_interval = Duration::from_millis(100);
        let phone = Client::connect(&server.url(), Arc::new(FakePhone::new()), options).await.expect("connect");
        for image in &images(60, 52) {
            let answer = phone.infer(image).await.expect("answer");
            assert_eq!(answer.served_by, Choice::MobileOnly, "{answer:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let probes = phone.uplink_probe_stats().probes;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        loading.await.expect("the loading phone");
        server.stop().await.expect("clean stop");

        let reports = *load_reports.lock().expect("reports");
        assert!(probes >= 3, "{probes} probes in about 1.5 s at one per 100 ms");
        // Four empty and four padded calls per finished probe, each answer with the busy split.
        assert!(reports >= 8 * probes as usize, "{reports} load reports from {probes} probes: not one per status answer");
    })
    .await
    .expect("test finishes in time");
}
