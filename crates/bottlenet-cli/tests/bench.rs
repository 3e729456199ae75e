//! `bottlenet bench --json`: every group's figures are there, each a median inside its spread.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use assert_cmd::Command;
use serde_json::Value;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bench_reports_a_median_and_spread_for_every_figure() {
    let output = Command::cargo_bin("bottlenet")
        .unwrap()
        .current_dir(repo())
        .args(["bench", "--only", "codec,compact,train,server", "--runs", "2", "--warmup", "1", "--requests-per-client", "2", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "bench failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    // The server group's engine: tract, the CPU default of this (default-feature) build.
    assert!(report["engine"].as_str().unwrap().contains("tract 0."), "the engine is named: {}", report["engine"]);
    let figures = report["figures"].as_array().unwrap();
    let count = |group: &str| figures.iter().filter(|f| f["group"] == group).count();
    // 4 codec shapes; compact: full forward (BN unfolded and folded) + head and tail at each of 6
    // splits; 3 training variants; 1, 8 and 64 clients.
    assert_eq!((count("codec"), count("compact"), count("train"), count("server")), (4, 14, 3, 3), "{report}");
    for f in figures {
        let (p10, median, p90) = (f["p10"].as_f64().unwrap(), f["median"].as_f64().unwrap(), f["p90"].as_f64().unwrap());
        assert!(median.is_finite() && median > 0.0 || f["name"].as_str().unwrap().contains("RB6 tail"), "{f}");
        assert!(p10 <= median && median <= p90, "{f}");
    }
    let aware = figures.iter().find(|f| f["name"].as_str().unwrap().contains("aware")).unwrap();
    assert!(aware["note"].as_str().unwrap().contains("codec share"), "{aware}");
    for clients in ["1 concurrent", "8 concurrent", "64 concurrent"] {
        assert!(figures.iter().any(|f| f["group"] == "server" && f["name"].as_str().unwrap().contains(clients)), "{clients}");
    }
}

#[test]
fn bench_refuses_an_unknown_group_in_one_line() {
    let output = Command::cargo_bin("bottlenet").unwrap().args(["bench", "--only", "codecs"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("codec, compact, resnet50, train, server"), "{stderr}");
}

#[cfg(not(feature = "tract"))]
#[test]
fn bench_engines_without_the_tract_feature_says_how_to_get_it() {
    let output = Command::cargo_bin("bottlenet").unwrap().args(["bench", "--only", "engines"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--features tract"), "{stderr}");
}
