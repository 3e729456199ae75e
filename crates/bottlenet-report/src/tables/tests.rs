//! Unit tests of `tables.rs`.

use super::*;
use bottlenet_partition::{
    CloudOnlyResult, MobileOnlyResult, Network, PROFILE_FORMAT, Profile, ProfileEntry,
    RESULTS_FORMAT, Role, SplitResult, TrainingResults,
};

use crate::inputs::NamedNetwork;

fn profile(role: Role, entries: &[(&str, f64)]) -> Profile {
    Profile {
        format: PROFILE_FORMAT,
        device: format!("{role} box"),
        role,
        threads: 1,
        load_level: 0,
        power_w: None,
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

/// Two splits: A (fast, accurate enough) and B (too inaccurate), 1 Mbit/s with a flat 1 W
/// radio so the numbers are easy to check by hand.
fn inputs() -> ReportInputs {
    let split = |name: &str, index, bytes, accuracy| SplitResult {
        name: name.into(),
        index,
        bytes,
        accuracy,
        c_prime: Some(1),
        s: Some(2),
    };
    let results = TrainingResults {
        format: RESULTS_FORMAT,
        model: "m".into(),
        dataset: "d".into(),
        baseline_accuracy: 80.0,
        source: String::new(),
        splits: vec![split("A", 1, 125.0, 79.0), split("B", 2, 10.0, 70.0)],
        cloud_only: CloudOnlyResult {
            bytes: 12_500.0,
            accuracy: 80.0,
            quality: None,
        },
        mobile_only: MobileOnlyResult { accuracy: 80.0 },
    };
    let mobile = profile(
        Role::Mobile,
        &[
            ("A", 1.0),
            ("B", 2.0),
            (CLOUD_ONLY, 0.0),
            (MOBILE_ONLY, 50.0),
        ],
    );
    let cloud = profile(Role::Cloud, &[("A", 0.0), ("B", 0.0), (CLOUD_ONLY, 0.0)]);
    let mut inputs = ReportInputs::new(results, mobile, cloud);
    inputs.mobile_power_w = Some(2.0);
    inputs.networks = vec![NamedNetwork {
        name: "slow".into(),
        network: Network::new(1.0, 0.0, 1000.0).unwrap(),
    }];
    inputs
}

#[test]
fn figures_follow_selection_by_hand() {
    let t = Tables::compute(&inputs()).unwrap();
    // A: TU = 8·125 B / 1 Mbit/s = 1 ms; latency 1 + 1 = 2 ms; energy 1·2 + 1·1000/1000 = 3 mJ.
    let a = &t.table4[0].costs[0];
    assert!((a.tu_ms - 1.0).abs() < 1e-12 && (a.latency_ms - 2.0).abs() < 1e-12);
    assert!((a.energy_mj - 3.0).abs() < 1e-12);
    assert!(a.best_latency && a.best_energy);
    assert!(!t.table4[1].eligible, "B is 10 points below the baseline");
    assert!(!t.table4[1].costs[0].best_latency);
    // Cloud-only: 100 ms and 100 mJ; mobile-only 50 ms and 100 mJ.
    let best = t.best("slow", Target::Latency).unwrap();
    assert_eq!(best.candidate, "A");
    assert_eq!(best.targets, [Target::Latency, Target::Energy]);
    assert!((best.latency_gain_vs_cloud.unwrap() - 50.0).abs() < 1e-9);
    assert!((best.energy_gain_vs_cloud.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert!((best.latency_gain_vs_mobile.unwrap() - 25.0).abs() < 1e-9);
    assert_eq!(t.table5.len(), 3);
    assert!(
        t.table4_markdown()
            .contains("| A | 1 | 2 | 125 | 79.00 | **2.00** | **3.00** |")
    );
    assert!(t.table4_markdown().contains("70.00 (below 78.00)"));
    assert!(
        t.table5_markdown()
            .contains("* slow: A for latency, A for energy")
    );
}

#[test]
fn the_wire_overhead_reaches_tu_on_server_paths_only() {
    let mut i = inputs();
    i.cloud.wire_overhead_bytes = Some(125.0);
    let t = Tables::compute(&i).unwrap();
    // A: TU = 8·(125 + 125) B / 1 Mbit/s = 2 ms; latency 3 ms; energy 2 + 2 = 4 mJ.
    let a = &t.table4[0];
    assert!((a.bytes - 250.0).abs() < 1e-12);
    assert!((a.costs[0].tu_ms - 2.0).abs() < 1e-12 && (a.costs[0].latency_ms - 3.0).abs() < 1e-12);
    assert!((a.costs[0].energy_mj - 4.0).abs() < 1e-12);
    let row = |setup: Setup| t.table5.iter().find(|r| r.setup == setup).unwrap();
    // Cloud-only: 8·12,625 B / 1 Mbit/s = 101 ms; mobile-only: 50 ms, 0 bytes, as before.
    assert!((row(Setup::CloudOnly).latency_ms - 101.0).abs() < 1e-9);
    let mobile = row(Setup::MobileOnly);
    assert!((mobile.latency_ms - 50.0).abs() < 1e-12 && mobile.bytes.abs() < f64::EPSILON);
}

#[test]
fn no_eligible_split_leaves_out_the_bottlenet_row_and_says_so() {
    let mut i = inputs();
    i.results.splits[0].accuracy = 60.0;
    let t = Tables::compute(&i).unwrap();
    assert!(t.table5.iter().all(|r| r.setup != Setup::BottleNet));
    assert!(
        t.table5_markdown()
            .contains("no split reaches the accuracy threshold")
    );
}

#[test]
fn bad_inputs_are_named() {
    let mut i = inputs();
    i.networks.push(i.networks[0].clone());
    assert!(
        Tables::compute(&i)
            .unwrap_err()
            .to_string()
            .contains("appears twice")
    );
    let mut i = inputs();
    i.mobile.candidates.retain(|c| c.name != "B");
    assert!(Tables::compute(&i).unwrap_err().to_string().contains("B"));
}
