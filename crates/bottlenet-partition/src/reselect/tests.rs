//! The re-selector's policy: hysteresis, reachability, server reports and their expiry.

use super::*;
use crate::network::NetworkPreset;

/// E: early split, light phone work, 2000 B; L: late split, heavy phone work, 200 B.
/// On latency E wins above ≈4.11 Mbit/s (3 + 16/t = 6.5 + 1.6/t), L below.
fn costs() -> Vec<CandidateCosts> {
    let c = |name: &str, kind, tm_ms, tc_ms, bytes| CandidateCosts {
        name: name.into(),
        kind,
        tm_ms,
        tc_ms,
        bytes,
        accuracy: 76.0,
    };
    vec![
        c("E", CandidateKind::Split { index: 1 }, 1.0, 2.0, 2000.0),
        c("L", CandidateKind::Split { index: 9 }, 6.0, 0.5, 200.0),
        c("cloud-only", CandidateKind::CloudOnly, 0.5, 3.0, 30_000.0),
        c("mobile-only", CandidateKind::MobileOnly, 20.0, 0.0, 0.0),
    ]
}

fn reselector(config: ReselectConfig) -> Reselector {
    Reselector::new(costs(), NetworkPreset::WiFi.network(), config).unwrap()
}

fn latency_config() -> ReselectConfig {
    ReselectConfig::new(Target::Latency, 1.3, 76.0, 2.0)
}

/// Feeds throughput samples; returns the decisions that changed the choice.
fn feed(r: &mut Reselector, samples: impl IntoIterator<Item = f64>) -> Vec<String> {
    samples
        .into_iter()
        .filter_map(|mbps| {
            let d = r.observe(Observation::Uplink { mbps }).unwrap();
            d.changed.then_some(d.chosen)
        })
        .collect()
}

#[test]
fn bandwidth_drop_moves_to_the_later_split_once_and_back_once() {
    let mut r = reselector(latency_config());
    assert_eq!(r.current(), "E");
    assert!(feed(&mut r, [18.88; 20]).is_empty());
    // Wi-Fi → 3G: fewer bytes matter more, so Algorithm 1 picks the later split.
    let changes = feed(&mut r, [1.1; 30]);
    assert_eq!(changes, ["L"]);
    assert_eq!(r.current(), r.selection().unwrap().chosen().candidate);
    assert!((r.uplink_mbps() - 1.1).abs() < 1e-3);
    // And back.
    let changes = feed(&mut r, [18.88; 30]);
    assert_eq!(changes, ["E"]);
    assert_eq!(r.current(), r.selection().unwrap().chosen().candidate);
}

#[test]
fn a_change_needs_the_configured_number_of_confirmations() {
    let mut config = latency_config();
    config.ewma_weight = 1.0; // no smoothing: each sample is the estimate
    config.confirmations = 4;
    let mut r = reselector(config);
    for i in 1..4 {
        let d = r.observe(Observation::Uplink { mbps: 1.1 }).unwrap();
        assert!(!d.changed, "changed after {i} observations");
    }
    // A sample on the other side resets the count.
    assert!(
        !r.observe(Observation::Uplink { mbps: 18.88 })
            .unwrap()
            .changed
    );
    assert!(feed(&mut r, [1.1; 3]).is_empty());
    assert_eq!(feed(&mut r, [1.1]), ["L"]);
}

#[test]
fn noise_around_the_boundary_does_not_flap() {
    let boundary = 14.4 / 3.5; // E and L cost the same here
    // Deterministic ±8 % noise (xorshift), well inside the 10 % margin's reach.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let samples: Vec<f64> = (0..500)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            boundary * (1.0 + 0.16 * (u - 0.5))
        })
        .collect();
    let mut r = reselector(latency_config());
    let settle = feed(&mut r, std::iter::repeat_n(boundary, 40));
    assert!(settle.len() <= 1, "{settle:?}");
    assert!(feed(&mut r, samples.iter().copied()).is_empty());

    // The same noise without hysteresis flips back and forth: the guard above is what
    // prevents it.
    let mut config = latency_config();
    config.hysteresis = 0.0;
    config.confirmations = 1;
    config.ewma_weight = 1.0;
    let mut r = reselector(config);
    assert!(feed(&mut r, samples).len() > 10);
}

#[test]
fn server_load_pushes_work_to_the_phone() {
    let mut r = reselector(latency_config());
    assert_eq!(r.current(), "E");
    let mut changes = Vec::new();
    for _ in 0..5 {
        let d = r
            .observe(Observation::ServerLoad { tc_scale: 10.0 })
            .unwrap();
        if d.changed {
            changes.push(d.chosen);
        }
    }
    // E: 1 + 20 + 0.85 ms; L: 6 + 5 + 0.08 ms; mobile-only: 20 ms.
    assert_eq!(changes, ["L"]);
    // A reported service time for L makes the phone do everything.
    for _ in 0..3 {
        r.observe(Observation::ServiceTime {
            candidate: "L".into(),
            tc_ms: 30.0,
        })
        .unwrap();
    }
    assert_eq!(r.current(), "mobile-only");
}

#[test]
fn a_busy_server_is_busy_for_the_paths_not_in_use_too() {
    let mut r = reselector(latency_config());
    assert_eq!(r.current(), "E");
    // L was once reported fast; then E, the path in use, reports the server 30x slower
    // than profiled. L's old report is stale: it costs its profiled TC x 30 now.
    r.observe(Observation::ServiceTime {
        candidate: "L".into(),
        tc_ms: 0.5,
    })
    .unwrap();
    for _ in 0..3 {
        r.observe(Observation::ServiceTime {
            candidate: "E".into(),
            tc_ms: 60.0,
        })
        .unwrap();
    }
    let costs = r.effective_costs();
    let tc = |name: &str| costs.iter().find(|c| c.name == name).unwrap().tc_ms;
    assert!((tc("L") - 15.0).abs() < 1e-9, "L's TC {}", tc("L"));
    // E: 1 + 60 + 0.85 ms; L: 6 + 15 + 0.08 ms (with the stale 0.5 ms it would win at
    // 6.6 ms); mobile-only: 20 ms.
    assert_eq!(r.current(), "mobile-only");
}

/// Issue 14 (`netem.sh --adapt`): a phone that left for mobile-only because the server was
/// slow comes back once that report is too old to speak for the server, at once.
#[test]
fn an_expired_report_brings_back_the_path_it_drove_away() {
    let mut r = reselector(latency_config());
    for _ in 0..3 {
        r.observe(Observation::ServiceTime { candidate: "E".into(), tc_ms: 60.0 }).unwrap();
    }
    assert_eq!(r.current(), "mobile-only");
    // L, never reported, costs its profiled TC x 30 (the factor E's report set).
    let d = r.observe(Observation::ReportExpired { candidate: "L".into() }).unwrap();
    assert!(!d.changed, "{d:?}");
    let d = r.observe(Observation::ReportExpired { candidate: "E".into() }).unwrap();
    assert_eq!(d, Decision { chosen: "E".into(), changed: true });
    let costs = r.effective_costs();
    let tc = |name: &str| costs.iter().find(|c| c.name == name).unwrap().tc_ms;
    assert!((tc("E") - 2.0).abs() < 1e-9 && (tc("L") - 0.5).abs() < 1e-9, "profiled again: {costs:?}");
    // Mobile-only again, through a status that reports L busy (others use it): cloud-only,
    // never reported, costs its profiled TC x L's factor, so it does not look idle.
    for _ in 0..3 {
        r.observe(Observation::ServiceTime { candidate: "E".into(), tc_ms: 60.0 }).unwrap();
    }
    assert_eq!(r.current(), "mobile-only");
    r.observe(Observation::ReportExpired { candidate: "E".into() }).unwrap();
    r.observe(Observation::ServerReachable).unwrap();
    assert_eq!(r.current(), "E");
    for _ in 0..3 {
        r.observe(Observation::ServiceTime { candidate: "E".into(), tc_ms: 60.0 }).unwrap();
    }
    r.observe(Observation::ServiceTime { candidate: "L".into(), tc_ms: 20.0 }).unwrap();
    r.observe(Observation::ReportExpired { candidate: "E".into() }).unwrap();
    assert_eq!(r.current(), "mobile-only", "L's report, 40x, speaks for the server now");
    let costs = r.effective_costs();
    let tc = |name: &str| costs.iter().find(|c| c.name == name).unwrap().tc_ms;
    assert!((tc("cloud-only") - 3.0 * 40.0).abs() < 1e-9 && (tc("E") - 2.0 * 40.0).abs() < 1e-9, "{costs:?}");
    // L's report lasts (a status refreshes it) while E's old one expires: L still speaks.
    for _ in 0..3 {
        r.observe(Observation::ServiceTime { candidate: "L".into(), tc_ms: 20.0 }).unwrap();
    }
    r.observe(Observation::ReportExpired { candidate: "L".into() }).unwrap();
    assert_eq!(r.current(), "E", "nothing left to say the server is busy");
    for _ in 0..3 {
        r.observe(Observation::ServiceTime { candidate: "E".into(), tc_ms: 60.0 }).unwrap();
    }
    assert_eq!(r.current(), "mobile-only");
    // L at 14 ms (28x) is below the 30x of E, the path that left: E's factor stands...
    r.observe(Observation::ServiceTime { candidate: "L".into(), tc_ms: 14.0 }).unwrap();
    // ...until E's report goes, and L's still stands for the server.
    r.observe(Observation::ReportExpired { candidate: "E".into() }).unwrap();
    assert_eq!(r.current(), "mobile-only", "E's report went, L's still stands");
    let costs = r.effective_costs();
    let tc = |name: &str| costs.iter().find(|c| c.name == name).unwrap().tc_ms;
    assert!((tc("E") - 2.0 * 28.0).abs() < 1e-9 && (tc("cloud-only") - 3.0 * 28.0).abs() < 1e-9, "{costs:?}");
    assert!(matches!(
        r.observe(Observation::ReportExpired { candidate: "nope".into() }),
        Err(Error::UnknownCandidate(_))
    ));
}

#[test]
fn unreachable_server_forces_mobile_only_until_it_answers() {
    let mut r = reselector(latency_config());
    let d = r.observe(Observation::ServerUnreachable).unwrap();
    assert_eq!(
        d,
        Decision {
            chosen: "mobile-only".into(),
            changed: true
        }
    );
    assert!(!r.observe(Observation::ServerUnreachable).unwrap().changed);
    assert!(
        feed(&mut r, [1.1; 30]).is_empty(),
        "no split while the server is away"
    );
    let d = r.observe(Observation::ServerReachable).unwrap();
    // Bandwidth fell meanwhile: back to splitting, at the split that now wins.
    assert_eq!(
        d,
        Decision {
            chosen: "L".into(),
            changed: true
        }
    );
    assert!(!r.observe(Observation::ServerReachable).unwrap().changed);
}

#[test]
fn candidates_the_bundle_or_server_lack_are_never_chosen() {
    let mut r = reselector(latency_config());
    assert_eq!(r.current(), "E");
    // The server holds L only: E and cloud-only go, mobile-only stays.
    let removed = r.retain(|name| name == "L").unwrap();
    assert_eq!(removed, vec!["E".to_string(), "cloud-only".to_string()]);
    assert_eq!(r.current(), "L");
    let names: Vec<String> = r.effective_costs().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["L".to_string(), "mobile-only".to_string()]);
    assert!(feed(&mut r, [100.0; 10]).is_empty(), "E is gone, whatever the link");
    assert_eq!(r.retain(|_| false).unwrap(), vec!["L".to_string()]);
    assert_eq!(r.current(), "mobile-only");
}

#[test]
fn bad_observations_and_configs_are_rejected() {
    let mut r = reselector(latency_config());
    let before = r.uplink_mbps();
    assert!(r.observe(Observation::Uplink { mbps: 0.0 }).is_err());
    assert!(r.observe(Observation::Uplink { mbps: f64::NAN }).is_err());
    assert!(
        r.observe(Observation::ServerLoad { tc_scale: -1.0 })
            .is_err()
    );
    assert!(matches!(
        r.observe(Observation::ServiceTime {
            candidate: "nope".into(),
            tc_ms: 1.0
        }),
        Err(Error::UnknownCandidate(_))
    ));
    assert!((r.uplink_mbps() - before).abs() < 1e-12);

    let mut config = latency_config();
    config.hysteresis = 1.0;
    assert!(Reselector::new(costs(), NetworkPreset::WiFi.network(), config).is_err());
    let mut config = latency_config();
    config.confirmations = 0;
    assert!(Reselector::new(costs(), NetworkPreset::WiFi.network(), config).is_err());
    let no_fallback: Vec<_> = costs()
        .into_iter()
        .filter(|c| c.kind != CandidateKind::MobileOnly)
        .collect();
    assert!(matches!(
        Reselector::new(no_fallback, NetworkPreset::WiFi.network(), latency_config()),
        Err(Error::NoMobileOnly)
    ));
}

#[test]
fn only_the_path_sending_the_most_bytes_needs_no_probe_of_a_faster_link() {
    let mut r = reselector(latency_config());
    assert_eq!(r.current(), "E");
    assert!(!r.current_sends_most(), "E (2000 B) sends less than cloud-only (30000 B)");
    r.observe(Observation::ServerUnreachable).unwrap();
    assert_eq!(r.current(), "mobile-only");
    assert!(!r.current_sends_most(), "mobile-only sends nothing");
    let only_cloud = vec![
        CandidateCosts { name: "cloud-only".into(), kind: CandidateKind::CloudOnly, tm_ms: 0.5, tc_ms: 1.0, bytes: 30_000.0, accuracy: 76.0 },
        CandidateCosts { name: "mobile-only".into(), kind: CandidateKind::MobileOnly, tm_ms: 20.0, tc_ms: 0.0, bytes: 0.0, accuracy: 76.0 },
    ];
    let r = Reselector::new(only_cloud, NetworkPreset::WiFi.network(), latency_config()).unwrap();
    assert_eq!(r.current(), "cloud-only");
    assert!(r.current_sends_most());
}
