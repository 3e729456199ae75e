//! Algorithm 1 sees the wire: `TU_j = 8·(D_j + o)/NB` (§2.3, line 37) with `o` the cloud
//! profile's `wire_overhead_bytes`, the transport's bytes per image, on every path that sends
//! something and never on mobile-only — at start-up ([`select`]) and at run time
//! ([`Reselector`], §3.4) alike. Profiles without the field (the paper's) select as before.

#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

use std::path::{Path, PathBuf};

use bottlenet_partition::{
    CLOUD_ONLY, CandidateCosts, CandidateKind, CloudOnlyResult, Error, MOBILE_ONLY,
    MobileOnlyResult, NetworkPreset, Observation, PROFILE_FORMAT, Profile, ProfileEntry,
    RESULTS_FORMAT, ReselectConfig, Reselector, Role, SplitResult, Target, TrainingResults, select,
};

const PM_W: f64 = 1.3;
const ACCURACY: f64 = 76.0;

fn profiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

fn profile(role: Role, entries: &[(&str, f64)]) -> Profile {
    Profile {
        format: PROFILE_FORMAT,
        device: format!("{role} test box"),
        role,
        threads: 1,
        load_level: 0,
        power_w: (role == Role::Mobile).then_some(PM_W),
        request_overhead_ms: None,
        wire_overhead_bytes: None,
        source: String::new(),
        candidates: entries
            .iter()
            .map(|&(name, t)| ProfileEntry {
                name: name.into(),
                median_ms: t,
                p90_ms: t,
                samples: 1,
            })
            .collect(),
    }
}

/// A tiny-frame split against mobile-only. Latency on a link of `t` Mbit/s, `o` overhead bytes:
/// RB1 = 10 + 8·(100 + o)/(t·10³) + 1 ms, mobile-only = 13 ms. On 3G (1.1 Mbit/s) RB1 takes
/// 11.73 ms without overhead and 13.91 ms with `o = 300`: the overhead flips the choice.
fn tiny_frame_case(wire_overhead_bytes: Option<f64>) -> (TrainingResults, Profile, Profile) {
    let results = TrainingResults {
        format: RESULTS_FORMAT,
        model: "m".into(),
        dataset: "d".into(),
        baseline_accuracy: ACCURACY,
        source: String::new(),
        splits: vec![SplitResult {
            name: "RB1".into(),
            index: 1,
            bytes: 100.0,
            accuracy: ACCURACY,
            c_prime: Some(1),
            s: Some(2),
        }],
        cloud_only: CloudOnlyResult {
            bytes: 20_000.0,
            accuracy: ACCURACY,
            quality: None,
        },
        mobile_only: MobileOnlyResult { accuracy: ACCURACY },
    };
    let mobile = profile(
        Role::Mobile,
        &[("RB1", 10.0), (CLOUD_ONLY, 1.0), (MOBILE_ONLY, 13.0)],
    );
    let mut cloud = profile(Role::Cloud, &[("RB1", 1.0), (CLOUD_ONLY, 5.0)]);
    cloud.wire_overhead_bytes = wire_overhead_bytes;
    (results, mobile, cloud)
}

/// Saves `profile` as a file and loads it back, so the field goes through the file format.
fn through_file(dir: &Path, name: &str, profile: &Profile) -> Profile {
    let path = dir.join(name);
    profile.save(&path).unwrap();
    Profile::load(&path).unwrap()
}

fn tiny_frame_costs(wire_overhead_bytes: Option<f64>) -> Vec<CandidateCosts> {
    let dir = tempfile::tempdir().unwrap();
    let (results, mobile, cloud) = tiny_frame_case(wire_overhead_bytes);
    let cloud = through_file(dir.path(), "cloud.json", &cloud);
    assert_eq!(cloud.wire_overhead_bytes, wire_overhead_bytes);
    CandidateCosts::join(&results, &mobile, &cloud).unwrap()
}

#[test]
fn paper_profiles_have_no_overhead_and_measured_ones_say_where_theirs_came_from() {
    let dir = profiles_dir();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") && (name.contains("-cloud") || name.contains("-mobile")) {
            let profile = Profile::load(&path).unwrap();
            match profile.wire_overhead_bytes {
                // The paper's own figures count the payload only, and reproduce it exactly.
                Some(_) if name.starts_with("paper-") => panic!("{name}: the paper has no wire overhead"),
                Some(o) => assert!(o > 0.0 && profile.source.contains("wire overhead"), "{name}: {o} / {}", profile.source),
                None => {}
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "only {seen} profiles under {}", dir.display());
    let results = TrainingResults::load(dir.join("paper-resnet50-results.json")).unwrap();
    let mobile = Profile::load(dir.join("paper-tx2-mobile.json")).unwrap();
    let cloud = Profile::load(dir.join("paper-1080ti-cloud.json")).unwrap();
    let costs = CandidateCosts::join(&results, &mobile, &cloud).unwrap();
    for split in &results.splits {
        let row = costs.iter().find(|c| c.name == split.name).unwrap();
        assert!((row.bytes - split.bytes).abs() < 1e-12, "{}", split.name);
    }
    let cloud_only = costs.iter().find(|c| c.name == CLOUD_ONLY).unwrap();
    assert!((cloud_only.bytes - results.cloud_only.bytes).abs() < 1e-12);
}

#[test]
fn an_overhead_raises_tu_by_exactly_8_o_over_nb_on_server_paths_and_leaves_mobile_only_alone() {
    let dir = profiles_dir();
    let results = TrainingResults::load(dir.join("paper-resnet50-results.json")).unwrap();
    let mobile = Profile::load(dir.join("paper-tx2-mobile.json")).unwrap();
    let cloud = Profile::load(dir.join("paper-1080ti-cloud.json")).unwrap();
    let o = 250.0;
    let mut heavy = cloud.clone();
    heavy.wire_overhead_bytes = Some(o);
    let plain = CandidateCosts::join(&results, &mobile, &cloud).unwrap();
    let wired = CandidateCosts::join(&results, &mobile, &heavy).unwrap();
    for preset in NetworkPreset::ALL {
        let net = preset.network();
        // 8·o bits over NB = t_u·10⁶ bit/s, in ms.
        let extra_ms = 8.0 * o / (net.uplink_mbps * 1e6) * 1e3;
        let before = select(&plain, &net, Target::Latency, PM_W, 76.1, 2.0).unwrap();
        let after = select(&wired, &net, Target::Latency, PM_W, 76.1, 2.0).unwrap();
        for b in before.rows() {
            let a = after.get(&b.candidate).unwrap();
            let want = if b.kind == CandidateKind::MobileOnly {
                0.0
            } else {
                extra_ms
            };
            let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
            assert!(
                close(a.tu_ms - b.tu_ms, want),
                "{preset} {}: TU {} → {}",
                b.candidate,
                b.tu_ms,
                a.tu_ms
            );
            assert!(
                close(a.latency_ms - b.latency_ms, want),
                "{preset} {}",
                b.candidate
            );
            // The energy objective follows: TU·P_u, ms·mW = µJ.
            let want_mj = want * net.uplink_power_mw() / 1e3;
            assert!(
                close(a.energy_mj - b.energy_mj, want_mj),
                "{preset} {}",
                b.candidate
            );
            assert!(
                close(a.tm_ms, b.tm_ms) && close(a.tc_ms, b.tc_ms),
                "{preset} {}",
                b.candidate
            );
        }
        let mobile_only = after.get(MOBILE_ONLY).unwrap();
        assert!(mobile_only.tu_ms.abs() < f64::EPSILON && mobile_only.bytes.abs() < f64::EPSILON);
    }
}

#[test]
fn an_overhead_flips_a_tiny_frame_split_to_mobile_only_on_a_slow_network() {
    let net = NetworkPreset::ThreeG.network();
    for target in Target::ALL {
        let plain = select(&tiny_frame_costs(None), &net, target, PM_W, ACCURACY, 2.0).unwrap();
        assert_eq!(
            plain.chosen().candidate,
            "RB1",
            "{target}\n{}",
            plain.render_table()
        );
        let wired = select(
            &tiny_frame_costs(Some(300.0)),
            &net,
            target,
            PM_W,
            ACCURACY,
            2.0,
        )
        .unwrap();
        assert_eq!(
            wired.chosen().candidate,
            MOBILE_ONLY,
            "{target}\n{}",
            wired.render_table()
        );
    }
    // By hand, latency: 10 + 8·400 B / 1.1 Mbit/s + 1 = 13.909 ms against 13 ms.
    let wired = select(
        &tiny_frame_costs(Some(300.0)),
        &net,
        Target::Latency,
        PM_W,
        ACCURACY,
        2.0,
    )
    .unwrap();
    let rb1 = wired.get("RB1").unwrap();
    assert!(
        (rb1.latency_ms - (11.0 + 3200.0 / 1100.0)).abs() < 1e-9,
        "{}",
        rb1.latency_ms
    );
    // On Wi-Fi the same overhead costs 0.17 ms and the split still wins.
    let wifi = NetworkPreset::WiFi.network();
    let fast = select(
        &tiny_frame_costs(Some(300.0)),
        &wifi,
        Target::Latency,
        PM_W,
        ACCURACY,
        2.0,
    )
    .unwrap();
    assert_eq!(fast.chosen().candidate, "RB1");
}

#[test]
fn the_run_time_reselector_sees_the_overhead_too() {
    let config = ReselectConfig::new(Target::Latency, PM_W, ACCURACY, 2.0);
    let run = |overhead| {
        let costs = tiny_frame_costs(overhead);
        let mut r = Reselector::new(costs, NetworkPreset::WiFi.network(), config).unwrap();
        assert_eq!(r.current(), "RB1");
        // The link sags to 0.5 Mbit/s: RB1 takes 10 + 8·(100 + o)/500 + 1 ms.
        for _ in 0..30 {
            r.observe(Observation::Uplink { mbps: 0.5 }).unwrap();
        }
        let tu = r.selection().unwrap().get("RB1").unwrap().tu_ms;
        (r.current().to_owned(), tu, r.uplink_mbps())
    };
    let (plain, plain_tu, mbps) = run(None); // 12.6 ms against 13 ms
    let (wired, wired_tu, _) = run(Some(300.0)); // 17.4 ms: mobile-only beats it by 25 %
    assert_eq!(plain, "RB1");
    assert_eq!(wired, MOBILE_ONLY);
    assert!((mbps - 0.5).abs() < 1e-3, "{mbps}");
    // The same formula as at start-up, at the measured throughput.
    let extra_ms = 8.0 * 300.0 / (mbps * 1e6) * 1e3;
    assert!(
        (wired_tu - plain_tu - extra_ms).abs() < 1e-9,
        "{plain_tu} {wired_tu}"
    );
}

#[test]
fn a_negative_or_non_finite_overhead_in_a_profile_file_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, cloud) = tiny_frame_case(Some(40.0));
    let text = serde_json::to_string_pretty(&cloud).unwrap();
    assert!(text.contains("\"wire_overhead_bytes\": 40.0"), "{text}");
    for (bad, needle) in [
        (
            "-40.0",
            "wire_overhead_bytes must be a finite number of bytes",
        ),
        ("NaN", "not valid JSON"),
        ("1e999", "not valid JSON"),
    ] {
        let path = dir.path().join("bad-cloud.json");
        std::fs::write(&path, text.replace("40.0", bad)).unwrap();
        let err = Profile::load(&path).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(needle) && message.contains("bad-cloud.json"),
            "{bad}: {message}"
        );
        assert!(!message.contains('\n'), "{bad}: {message:?}");
        if bad == "-40.0" {
            assert!(matches!(err, Error::InvalidProfile(_)), "{err:?}");
        }
    }
    // In a phone's profile the field is out of place.
    let (_, mut mobile, _) = tiny_frame_case(None);
    mobile.wire_overhead_bytes = Some(40.0);
    let path = dir.path().join("mobile.json");
    std::fs::write(&path, serde_json::to_string(&mobile).unwrap()).unwrap();
    let message = Profile::load(&path).unwrap_err().to_string();
    assert!(message.contains("belongs in a cloud profile"), "{message}");
}
