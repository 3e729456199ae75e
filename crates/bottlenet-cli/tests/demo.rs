//! `bottlenet demo` end to end on the shipped bundle and the embedded data: a loopback server,
//! the paced phone client, Algorithm 1 per network, the measured Table 5 and the report files.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use assert_cmd::Command;
use serde_json::Value;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn demo_measures_every_setup_and_writes_the_report() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("bottlenet")
        .unwrap()
        .current_dir(repo())
        .args(["demo", "--images", "40", "--networks", "3g,wifi", "--profile-runs", "5", "--json", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "demo failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    // Three setups per network: mobile-only, cloud-only, BottleNet at a split.
    assert_eq!(rows.len(), 6, "{report}");
    for network in ["3G", "Wi-Fi"] {
        let setups: Vec<&str> = rows.iter().filter(|r| r["network"] == network).map(|r| r["setup"].as_str().unwrap()).collect();
        assert_eq!(setups, ["mobile-only", "cloud-only", "BottleNet"], "{network}");
    }
    for row in rows {
        assert_eq!(row["images"], 40, "{row}");
        let accuracy = row["accuracy"].as_f64().unwrap();
        assert!((50.0..=100.0).contains(&accuracy), "a trained model, not chance: {row}");
        for field in ["latency_ms", "phone_ms", "energy_mj", "predicted_latency_ms", "predicted_energy_mj"] {
            let v = row[field].as_f64().unwrap();
            assert!(v.is_finite() && v > 0.0, "{field} in {row}");
        }
        let (bytes, upload) = (row["mean_bytes"].as_f64().unwrap(), row["upload_ms"].as_f64().unwrap());
        match row["path"].as_str().unwrap() {
            "mobile-only" => assert!(bytes == 0.0 && upload == 0.0, "{row}"),
            // Real bytes: a frame or a JPEG file, headers included; the paced link takes at
            // least 8·bytes / rate.
            _ => {
                assert!(bytes > 28.0, "{row}");
                let rate_mbps = if row["network"] == "3G" { 1.1 } else { 18.88 };
                assert!(upload >= 8.0 * bytes / (rate_mbps * 1e3) * 0.999, "upload faster than the link: {row}");
            }
        }
    }
    // The bottleneck sends far fewer bytes than the input JPEG.
    let bytes = |setup: &str| rows.iter().find(|r| r["network"] == "3G" && r["setup"] == setup).unwrap()["mean_bytes"].as_f64().unwrap();
    assert!(bytes("BottleNet") < bytes("cloud-only") / 3.0);
    assert_eq!(report["choices"].as_array().unwrap().len(), 2);
    // Beside the measured table, the paper's own devices: Algorithm 1 puts the cut after RB1 on
    // every network there (paper §3.3), and the demo says why this machine differs.
    let paper = &report["paper"];
    let paper_choices: Vec<&str> = paper["choices"].as_array().unwrap().iter().map(|c| c[1].as_str().unwrap()).collect();
    assert_eq!(paper_choices, ["RB1", "RB1"], "{paper}");
    assert!(paper["table5_markdown"].as_str().unwrap().contains("| BottleNet |"), "{paper}");
    let ratio_paper = paper["phone_to_server_paper"].as_f64().unwrap();
    assert!(ratio_paper > 5.0, "the TX2 is far slower than the 1080 Ti: {paper}");
    assert!(paper["why"].as_str().unwrap().contains('×'), "{paper}");
    let demo_md = std::fs::read_to_string(out.path().join("demo.md")).unwrap();
    assert!(demo_md.contains("on the paper's devices"), "{demo_md}");
    for file in ["demo.md", "demo.json", "demo_breakdown.png", "table4.md", "table5.md", "latency.png", "energy.png", "results.json", "mobile-profile.json", "cloud-profile.json"] {
        assert!(out.path().join(file).is_file(), "missing {file}");
    }
}

#[test]
fn demo_without_a_bundle_says_what_to_do() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("bottlenet")
        .unwrap()
        .current_dir(out.path())
        .args(["demo", "--images", "5"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--bundle"), "{stderr}");
}
