//! `bottlenet select`, `bottlenet report` and `bottlenet model info` end to end on the paper's
//! figures (profiles/paper-*.json: ResNet-50 on a Jetson TX2 and a GTX 1080 Ti).
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use assert_cmd::Command;
use serde_json::Value;
use std::path::PathBuf;

fn profile(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../profiles").join(name)
}

fn bottlenet() -> Command {
    Command::cargo_bin("bottlenet").unwrap()
}

/// The paper's own results and TX2 / 1080 Ti profiles (`profiles/`).
const PAPER: [&str; 3] = ["paper-resnet50-results.json", "paper-tx2-mobile.json", "paper-1080ti-cloud.json"];
/// The measured Fashion-MNIST search's results and profiles (`profiles/`).
const FASHION_SEARCH: [&str; 3] = ["fashion-search-results.json", "fashion-search-mobile.json", "fashion-search-cloud.json"];

/// `bottlenet SUBCOMMAND --results R --mobile-profile P --cloud-profile Q` with the files `[R, P, Q]`.
fn planned(subcommand: &str, [results, mobile, cloud]: [&str; 3]) -> Command {
    let mut command = bottlenet();
    command.arg(subcommand).arg("--results").arg(profile(results)).arg("--mobile-profile").arg(profile(mobile)).arg("--cloud-profile").arg(profile(cloud));
    command
}

fn select_json(extra: &[&str]) -> Vec<Value> {
    let output = planned("select", PAPER)
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    assert!(output.status.success(), "select failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn select_chooses_rb1_on_every_network_and_target() {
    for network in ["3g", "4g", "wifi"] {
        for target in ["latency", "energy"] {
            let rows = select_json(&["--network", network, "--target", target]);
            assert!(rows.len() > 2, "{network}/{target}: only {} rows", rows.len());
            for row in &rows {
                for field in ["candidate", "tm_ms", "tu_ms", "tc_ms", "latency_ms", "energy_mj", "bytes", "accuracy", "chosen"] {
                    assert!(row.get(field).is_some(), "{network}/{target}: row lacks {field}: {row}");
                }
            }
            let chosen: Vec<&str> =
                rows.iter().filter(|r| r["chosen"] == true).map(|r| r["candidate"].as_str().unwrap()).collect();
            assert_eq!(chosen, ["RB1"], "{network}/{target}");
        }
    }
}

#[test]
fn select_cloud_only_upload_on_3g_matches_the_paper() {
    let rows = select_json(&["--network", "3g"]);
    let cloud = rows.iter().find(|r| r["candidate"] == "cloud-only").expect("a cloud-only row");
    let tu = cloud["tu_ms"].as_f64().unwrap();
    // 26,766 B · 8 / 1.1 Mbit/s = 194.66 ms (DESIGN §3).
    assert!((tu - 194.7).abs() < 0.1, "cloud-only TU on 3G = {tu}");
}

#[test]
fn select_custom_uplink_equals_the_preset() {
    let preset = select_json(&["--network", "4g", "--target", "energy"]);
    let custom = select_json(&["--uplink-mbps", "5.85", "--alpha", "438.39", "--beta", "1288.04", "--target", "energy"]);
    assert_eq!(preset.len(), custom.len());
    for (a, b) in preset.iter().zip(&custom) {
        assert_eq!(a["candidate"], b["candidate"]);
        let (ea, eb) = (a["energy_mj"].as_f64().unwrap(), b["energy_mj"].as_f64().unwrap());
        assert!((ea - eb).abs() < 1e-9, "{}: {ea} vs {eb}", a["candidate"]);
    }
}

#[test]
fn select_table_names_the_choice() {
    let output = planned("select", PAPER)
        .args(["--network", "wifi", "--target", "energy"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.lines().any(|l| l.starts_with("chosen: RB1")), "{stdout}");
}

#[test]
fn select_bad_network_is_a_one_line_error() {
    let output = planned("select", PAPER)
        .args(["--network", "5g"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error:") && stderr.contains("5g"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn report_writes_tables_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = planned("report", PAPER)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "report failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let table5 = out.join("table5.md");
    assert!(std::fs::read_to_string(&table5).unwrap().contains("RB1"));
    assert!(stdout.contains("table5.md"), "{stdout}");
    let pngs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert!(!pngs.is_empty(), "no PNG in {}", out.display());
    for png in &pngs {
        let bytes = std::fs::read(png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", png.display());
        assert!(stdout.contains(png.file_name().unwrap().to_str().unwrap()), "{stdout}");
    }
}

#[test]
fn model_info_resnet50_json() {
    let output = bottlenet().args(["model", "info", "--arch", "resnet50", "--input", "3x224x224", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows: Vec<Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The input row and RB1..RB16 ([3, 4, 6, 3] bottleneck blocks).
    assert_eq!(rows.len(), 17);
    assert_eq!(rows[0]["split"], "input");
    assert_eq!(rows[0]["shape"], "3x224x224");
    let rb1 = &rows[1];
    assert_eq!(rb1["split"], "RB1");
    assert_eq!(rb1["module"], "layer1.0");
    assert_eq!(rb1["shape"], "256x56x56");
    assert_eq!(rb1["u8_bytes"], 256 * 56 * 56);
    assert_eq!(rb1["f32_bytes"], 4 * 256 * 56 * 56);
    for field in ["head_macs", "tail_macs"] {
        assert!(rb1[field].as_u64().unwrap() > 0, "{field}");
    }
    assert_eq!(rows[16]["shape"], "2048x7x7");
}

/// The measured Fashion-MNIST search (committed records and profiles): Fig. 6 from the backbone,
/// Fig. 7 from the RB1 quality sweep, the grid as a table.
#[test]
fn report_draws_fig6_and_fig7_from_a_search() {
    let dir = tempfile::tempdir().unwrap();
    let search = dir.path().join("search");
    std::fs::create_dir_all(&search).unwrap();
    let records = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../reports/fashion-search/search-records.jsonl");
    std::fs::copy(&records, search.join("shard-0-of-1.jsonl")).unwrap();
    let out = dir.path().join("report");
    let run = |fig7: &str| {
        planned("report", FASHION_SEARCH)
            .args(["--arch", "compact", "--input", "1x28x28", "--classes", "10", "--fig7", fig7, "--search"])
            .arg(&search)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let output = run("1,1,2");
    assert!(output.status.success(), "report failed: {}", String::from_utf8_lossy(&output.stderr));
    for file in ["feature_size.png", "accuracy_vs_bytes.png", "search.md", "table5.md"] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    let table = std::fs::read_to_string(out.join("search.md")).unwrap();
    let rows = table.lines().filter(|l| l.starts_with("| RB")).count();
    assert_eq!(rows, std::fs::read_to_string(&records).unwrap().lines().count(), "one row per record");
    // A bottleneck the search never trained: one clear line.
    let output = run("1,3,2");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("c'=3"), "{stderr}");
}
