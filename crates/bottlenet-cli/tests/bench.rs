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
    // The server group's engine: the CPU default of this (default-feature) build, XNNPACK where
    // the build found it (always under CI, which installs it), else tract.
    let engine = report["engine"].as_str().unwrap();
    let xnnpack = engine.contains("XNNPACK 0.0~git");
    assert!(xnnpack || (engine.contains("tract 0.") && std::env::var_os("CI").is_none()), "the engine is named: {engine}");
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

/// `bench --only train-ops`'s names, each with its median, as `(name, median)` in report order.
fn train_ops_figures() -> Vec<(String, f64)> {
    let output = Command::cargo_bin("bottlenet")
        .unwrap()
        .args(["bench", "--only", "train-ops", "--runs", "1", "--warmup", "0", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "bench failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    report["figures"].as_array().unwrap().iter().map(|f| (f["name"].as_str().unwrap().to_string(), f["median"].as_f64().unwrap())).collect()
}

#[test]
fn train_ops_times_three_primitives_per_conv_shape_and_sums_them() {
    let figures = train_ops_figures();
    // Eight distinct conv shapes of the compact backbone × (forward, input grad, weight grad),
    // then the three weighted totals and their sum.
    assert_eq!(figures.len(), 28, "{figures:?}");
    let total = |phase: &str| figures.iter().find(|(n, _)| n == &format!("b64 every backbone conv: {phase}")).unwrap().1;
    let parts = total("forward") + total("input grad") + total("weight grad");
    assert!((total("all three") - parts).abs() < 1e-9 * parts.max(1.0), "{figures:?}");
    assert!(figures.iter().all(|(_, ms)| ms.is_finite() && *ms > 0.0), "{figures:?}");
}

/// A Python that imports torch: `$BOTTLENET_PYTHON`, `python3`, then Debian's `/usr/bin/python3`.
fn python_with_torch() -> Option<String> {
    let candidates = std::env::var("BOTTLENET_PYTHON").into_iter().chain(["python3".to_string(), "/usr/bin/python3".to_string()]);
    candidates.into_iter().find(|python| {
        std::process::Command::new(python).args(["-c", "import torch, torchvision"]).output().is_ok_and(|o| o.status.success())
    })
}

/// The two benches name the same convolutions, so their figures can be put side by side
/// (docs/pytorch-comparison.md): the shapes come from arch.rs on one side and from the PyTorch
/// module's forward hooks on the other, and must agree.
#[test]
fn pytorch_bench_times_the_same_train_ops_as_ours() {
    let Some(python) = python_with_torch() else {
        let message = "python3 with torch and torchvision not found (apt-get install python3-torchvision, or set BOTTLENET_PYTHON)";
        assert!(std::env::var_os("CI").is_none(), "{message}: CI must install it so the train-ops comparison runs");
        eprintln!("SKIPPED pytorch train-ops comparison: {message}");
        return;
    };
    let output = std::process::Command::new(&python)
        .arg(repo().join("scripts/pytorch_bench.py"))
        .args(["--only", "train-ops", "--runs", "1", "--warmup", "0", "--threads", "1", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "pytorch_bench.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let theirs: Vec<String> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().strip_prefix("train-ops/").unwrap().to_string())
        .collect();
    let ours: Vec<String> = train_ops_figures().into_iter().map(|(name, _)| name).collect();
    assert_eq!(theirs, ours);
}
