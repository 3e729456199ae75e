//! The whole chain on RGB data a user would bring: an image folder of 32×32 colour photos (PNG and
//! JPEG, a few broken files among them), trained at the images' own size with the compact
//! model: train baseline → search two configurations → merge → profile mobile and cloud →
//! select → report → serve → `infer --split auto` and `infer --images`. Every step must exit 0
//! and write what it should; the shapes recorded along the way must be the folder's 3×32×32
//! (the search honours the base config's `[data]` with no `--data` given).
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

mod common;

use assert_cmd::Command;
use common::Served;
use serde_json::Value;
use std::path::{Path, PathBuf};

const CLASSES: [&str; 3] = ["red", "green", "blue"];
const PER_CLASS: usize = 14;
const SIDE: u32 = 32;

fn bottlenet() -> Command {
    Command::cargo_bin("bottlenet").unwrap()
}

/// Runs `command`, fails the test with its stderr unless it exits 0, returns stdout.
fn ok(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A pseudo-random byte stream (an LCG), so the photos differ from one another.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u8 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 56) as u8
    }
}

/// `root/<class>/<n>.{png,jpg}`: class k's photos are dominated by colour channel k over a noisy
/// gradient, so a few training steps can tell them apart; plus two files no decoder can read.
fn make_folder(root: &Path) {
    let mut noise = Noise(7);
    for (k, class) in CLASSES.iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..PER_CLASS {
            let image = image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
                let mut px = [0u8; 3];
                for (c, v) in px.iter_mut().enumerate() {
                    let base = if c == k { 170 } else { 40 };
                    *v = (base + (x + y) as u8 / 2).saturating_add(noise.next() / 4);
                }
                image::Rgb(px)
            });
            let path = dir.join(if n % 2 == 0 { format!("{n}.png") } else { format!("{n}.jpg") });
            image.save(&path).unwrap();
        }
    }
    std::fs::write(root.join("red/broken.png"), b"this is not a PNG file").unwrap();
    std::fs::write(root.join("blue/empty.jpg"), b"").unwrap();
}

/// `bottlenet serve BUNDLE` on 127.0.0.1, port chosen by the OS.
fn serve(bundle: &Path) -> Served {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("bottlenet"));
    command.args(["serve", "--bundle"]).arg(bundle).args(["--addr", "127.0.0.1:0"]);
    Served::spawn(command)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn rgb_folder_runs_through_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let photos = root.join("photos");
    make_folder(&photos);
    let data_section = format!("[data]\npath = {:?}\ncrop = {SIDE}\n", photos.display().to_string());

    // 1. The unmodified network at the photos' own size.
    let baseline_config = root.join("baseline.toml");
    std::fs::write(
        &baseline_config,
        format!(
            "name = \"rgb-baseline\"\n[model]\narch = \"compact\"\n[train]\nmode = \"baseline\"\nepochs = 1\nbatch_size = 8\noptimizer = \"sgd\"\nlr = 0.05\n{data_section}"
        ),
    )
    .unwrap();
    let baseline = root.join("runs/baseline");
    let trained = ok(bottlenet().arg("train").arg("--config").arg(&baseline_config).arg("--out").arg(&baseline).arg("--json"));
    let result: Value = serde_json::from_str(trained.trim()).unwrap();
    assert!(result["eval"]["accuracy"].as_f64().unwrap() >= 0.0);
    assert!(baseline.join("result.json").is_file());

    // 2. Two configurations (RB1, c'=1, s ∈ {1, 2}) from the baseline; no --data: the base
    //    config's [data] is the only way the search can find the photos.
    let base = root.join("search-base.toml");
    std::fs::write(
        &base,
        format!(
            "name = \"rgb-search\"\n[model]\narch = \"compact\"\nsplit = 1\n[train]\nmode = \"aware\"\nepochs = 1\nbatch_size = 8\noptimizer = \"sgd\"\nlr = 0.02\n{data_section}"
        ),
    )
    .unwrap();
    let spec = root.join("search.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"rgb\"\nbase = {:?}\nbaseline = {:?}\nsplits = [1]\nc_primes = [1]\nss = [1, 2]\n[budget]\nepochs = 1\nsteps_per_epoch = 2\n",
            base.display().to_string(),
            baseline.display().to_string()
        ),
    )
    .unwrap();
    let search = root.join("search");
    let summary: Value = serde_json::from_str(ok(bottlenet().arg("search").arg("--config").arg(&spec).arg("--out").arg(&search).arg("--json")).trim()).unwrap();
    assert_eq!(summary["trained"].as_array().unwrap().len(), 2, "{summary}");

    // 3. Merge (a generous tolerance: two steps of training are not the point here).
    let bundle = root.join("bundle");
    let merged: Value = serde_json::from_str(
        ok(bottlenet().args(["search", "merge", "--out"]).arg(&search).arg("--bundle").arg(&bundle).args(["--tolerance", "100", "--cloud-only-images", "12", "--json"])).trim(),
    )
    .unwrap();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["input_shape"], serde_json::json!([3, SIDE, SIDE]), "the search did not train on the photos");
    assert_eq!(manifest["resize"], serde_json::json!(SIDE));
    // Cloud-only sends colour JPEGs of 32×32 photos: far below the 3·32·32 = 3072 raw bytes.
    for point in merged["cloud_only"].as_array().unwrap() {
        let bytes = point["mean_bytes"].as_f64().unwrap();
        assert!(bytes > 100.0 && bytes < 3072.0, "cloud-only JPEG of {bytes} B: {point}");
    }
    let results = search.join("results.json");
    assert!(results.is_file());

    // 4. Profiles of both sides on this machine.
    let mobile_profile = root.join("mobile.json");
    let cloud_profile = root.join("cloud.json");
    for (role, out) in [("mobile", &mobile_profile), ("cloud", &cloud_profile)] {
        ok(bottlenet().args(["profile", "--role", role, "--runs", "3", "--mobile-power-w", "1.3", "--bundle"]).arg(&bundle).arg("--data").arg(&photos).arg("--out").arg(out));
        let profile: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        let names: Vec<&str> = profile["candidates"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"cloud-only") && names.contains(&"mobile-only") && names.iter().any(|n| n.starts_with("RB")), "{names:?}");
        if role == "cloud" {
            // The transport's overhead per image, measured by the profile itself over TLS (the
            // kernel's TCP counters of a real client's socket): at least one segment's
            // Ethernet/IP/TCP headers (54 B) per image, less than a second full-size packet.
            let wire = profile["wire_overhead_bytes"].as_f64().unwrap_or_else(|| panic!("no wire overhead measured: {profile}"));
            assert!(wire > 54.0 && wire < 1500.0, "wire overhead {wire} B per image");
            let source = profile["source"].as_str().unwrap();
            assert!(source.contains("wire overhead: measured") && source.contains("TLS"), "{source}");
            assert!(profile["request_overhead_ms"].as_f64().is_some(), "{profile}");
        }
    }

    // 5. Selection and the report.
    let planned = |command: &mut Command| {
        command.arg("--results").arg(&results).arg("--mobile-profile").arg(&mobile_profile).arg("--cloud-profile").arg(&cloud_profile);
    };
    let mut select = bottlenet();
    select.args(["select", "--network", "3g", "--target", "latency", "--json"]);
    planned(&mut select);
    assert!(!json_lines(&ok(&mut select)).is_empty());
    let report = root.join("report");
    let mut report_cmd = bottlenet();
    report_cmd.arg("report").args(["--arch", "compact", "--input", "3x32x32", "--classes", "3", "--out"]).arg(&report);
    planned(&mut report_cmd);
    ok(&mut report_cmd);
    for file in ["table4.md", "table5.md", "latency.png", "energy.png"] {
        assert!(report.join(file).is_file(), "report has no {file}");
    }

    // 6. Serve, then the phone: Algorithm 1's choice over the test photos, and the user's files.
    let served = serve(&bundle);
    let mut auto = bottlenet();
    auto.args(["infer", "--server", &served.url, "--split", "auto", "--network", "3g", "--limit", "6", "--json", "--bundle"]).arg(&bundle).arg("--data").arg(&photos);
    planned(&mut auto);
    let summary: Value = serde_json::from_str(ok(&mut auto).trim()).unwrap();
    assert_eq!(summary["requests"], 6, "{summary}");
    let files = [photos.join("red/0.png"), photos.join("blue/1.jpg")];
    for path in ["RB1", "cloud-only", "mobile-only"] {
        let out = ok(bottlenet().args(["infer", "--server", &served.url, "--split", path, "--top-k", "2", "--json", "--bundle"]).arg(&bundle).arg("--images").args(&files));
        let answers = json_lines(&out);
        assert_eq!(answers.len(), files.len(), "{out}");
        for answer in &answers {
            assert_eq!(answer["top_k"].as_array().unwrap().len(), 2, "{answer}");
            assert_eq!(answer["fell_back"], false, "{answer}");
            let bytes = answer["bytes_sent"].as_u64().unwrap();
            if path == "mobile-only" {
                assert_eq!(bytes, 0, "{answer}");
            } else {
                assert!(bytes > 0, "{answer}");
            }
        }
    }
    drop(served);
}

/// A bundle trained on 1×28×28 Fashion-MNIST meets 3×32×32 photos: one line, no panic.
#[test]
fn bundle_and_data_of_different_shapes_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    make_folder(&photos);
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fashion-compact");
    let output = bottlenet().args(["eval", "--limit", "4", "--bundle"]).arg(&shipped).arg("--data").arg(&photos).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().filter(|l| !l.trim().is_empty() && !l.starts_with("warning: skipped")).count(), 1, "{stderr}");
    assert!(stderr.contains("3×28×28") && stderr.contains("1×28×28"), "{stderr}");
}
