//! The report on the paper's own profiles (`profiles/paper-*.json`, derived from Tables 4–5):
//! Table 5 must pick RB1 on 3G, 4G and Wi-Fi with cloud-only at ≈196 ms on 3G (§3.2), the CSVs
//! must parse with their headers, and every plot must be a PNG of the requested size.

#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use bottlenet_partition::{
    CloudOnlyResult, Measurement, SearchConfig, SearchMode, Target, merge_records,
};
use bottlenet_report::{
    AccuracyPoint, FeatureSizeRow, FeatureSizes, ReportInputs, Setup, write_report,
};

fn profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

fn paper_inputs() -> ReportInputs {
    let dir = profiles();
    ReportInputs::load(
        dir.join("paper-resnet50-results.json"),
        dir.join("paper-tx2-mobile.json"),
        dir.join("paper-1080ti-cloud.json"),
    )
    .unwrap()
}

/// ResNet-50 on 224×224 RGB (paper Fig. 6): the output of RB1–3 is 256×56×56, RB4–7 512×28×28,
/// RB8–13 1024×14×14, RB14–16 2048×7×7.
fn resnet50_feature_sizes() -> FeatureSizes {
    let rows = (1..=16u64)
        .map(|j| {
            let (c, hw) = match j {
                1..=3 => (256, 56),
                4..=7 => (512, 28),
                8..=13 => (1024, 14),
                _ => (2048, 7),
            };
            let values = c * hw * hw;
            FeatureSizeRow {
                split: format!("RB{j}"),
                f32_bytes: 4 * values,
                u8_bytes: values,
            }
        })
        .collect();
    FeatureSizes {
        input_bytes: 3 * 224 * 224,
        rows,
    }
}

/// Rows of a Markdown table whose first cell is `setup`, split into trimmed cells.
fn rows_of<'a>(markdown: &'a str, setup: &str) -> Vec<Vec<&'a str>> {
    markdown
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells[0] == setup)
        .collect()
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let (w, h) = (reader.info().width, reader.info().height);
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgb);
    // Not a blank canvas: some pixels are not white.
    assert!(
        pixels[..frame.buffer_size()].iter().any(|&b| b < 200),
        "{} is blank",
        path.display()
    );
    (w, h)
}

#[test]
fn paper_profiles_give_rb1_everywhere_and_cloud_only_at_196_ms_on_3g() {
    let out = tempfile::tempdir().unwrap();
    let mut inputs = paper_inputs();
    inputs.feature_sizes = Some(resnet50_feature_sizes());
    let files = write_report(&inputs, out.path()).unwrap();

    // PM comes from the mobile profile (1.306 W, Table 5's 20.5 mJ / 15.7 ms).
    assert!((files.tables.mobile_power_w - 1.306).abs() < 1e-9);
    let table5 = std::fs::read_to_string(out.path().join("table5.md")).unwrap();
    let bottlenet = rows_of(&table5, "BottleNet");
    assert_eq!(
        bottlenet.len(),
        3,
        "one row per network (latency and energy agree):\n{table5}"
    );
    for (row, network) in bottlenet.iter().zip(["3G", "4G", "Wi-Fi"]) {
        assert_eq!(row[1], network);
        assert_eq!(row[2], "after RB1", "{table5}");
        assert_eq!(row[11], "latency, energy");
    }
    let cloud = rows_of(&table5, "Cloud-only");
    assert_eq!(cloud.len(), 3);
    assert_eq!(cloud[0][1], "3G");
    let cloud_3g_ms: f64 = cloud[0][5].parse().unwrap();
    assert!(
        (cloud_3g_ms - 196.2).abs() < 0.5,
        "paper: 196.2 ms; got {cloud_3g_ms}"
    );
    let mobile = rows_of(&table5, "Mobile-only");
    assert_eq!(mobile.len(), 1);
    assert!((mobile[0][5].parse::<f64>().unwrap() - 15.7).abs() < 0.05);
    assert!((mobile[0][6].parse::<f64>().unwrap() - 20.5).abs() < 0.05);
    // The latency gain over cloud-only on 3G: derived 49× (the paper's 63× assumes its 3.1 ms).
    let gain: f64 = bottlenet[0][7].trim_end_matches('×').parse().unwrap();
    assert!((40.0..70.0).contains(&gain), "{gain}");
    for n in ["3G", "4G", "Wi-Fi"] {
        assert_eq!(
            files.tables.best(n, Target::Energy).unwrap().candidate,
            "RB1"
        );
    }

    // Table 4: 16 splits, RB1 bold on every network.
    let table4 = std::fs::read_to_string(out.path().join("table4.md")).unwrap();
    assert_eq!(table4.lines().filter(|l| l.starts_with("| RB")).count(), 16);
    let rb1 = rows_of(&table4, "RB1");
    assert_eq!(rb1[0][3], "316");
    assert!(rb1[0][5..].iter().all(|c| c.starts_with("**")), "{table4}");

    // CSVs parse with the expected headers.
    let mut csv4 = csv::Reader::from_path(out.path().join("table4.csv")).unwrap();
    assert_eq!(
        csv4.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "split",
            "index",
            "c_prime",
            "s",
            "network",
            "bytes",
            "accuracy",
            "eligible",
            "tm_ms",
            "tu_ms",
            "tc_ms",
            "latency_ms",
            "energy_mj",
            "best_latency",
            "best_energy"
        ]
    );
    let records: Vec<csv::StringRecord> = csv4.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 16 * 3);
    assert_eq!(&records[0][0], "RB1");
    assert_eq!(&records[0][4], "3G");
    assert_eq!(&records[0][13], "true");
    let mut csv5 = csv::Reader::from_path(out.path().join("table5.csv")).unwrap();
    assert_eq!(
        csv5.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "setup",
            "network",
            "candidate",
            "best_for",
            "bytes",
            "accuracy",
            "latency_ms",
            "energy_mj",
            "latency_gain_vs_cloud_only",
            "energy_gain_vs_cloud_only",
            "latency_gain_vs_mobile_only",
            "energy_gain_vs_mobile_only"
        ]
    );
    let records: Vec<csv::StringRecord> = csv5.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1 + 3 + 3);
    let cloud_3g = records
        .iter()
        .find(|r| &r[0] == "Cloud-only" && &r[1] == "3G")
        .unwrap();
    assert!((cloud_3g[6].parse::<f64>().unwrap() - 196.19).abs() < 0.01);

    // Plots: three written, Fig. 7 skipped for lack of points, and said so.
    for name in ["feature_size.png", "latency.png", "energy.png"] {
        let path = out.path().join(name);
        assert!(files.written.contains(&path), "{name} not listed");
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
        assert_eq!(png_size(&path), inputs.plot_size, "{name}");
    }
    assert!(!out.path().join("accuracy_vs_bytes.png").exists());
    assert_eq!(files.skipped.len(), 1);
    assert_eq!(files.skipped[0].item, "accuracy_vs_bytes.png");
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("![Feature size per split point")
            && report.contains("accuracy_vs_bytes.png: no")
    );
    assert_eq!(files.written.last().unwrap(), &out.path().join("report.md"));
}

#[test]
fn missing_optional_inputs_skip_their_plots() {
    let out = tempfile::tempdir().unwrap();
    let files = write_report(&paper_inputs(), out.path()).unwrap();
    let skipped: Vec<&str> = files.skipped.iter().map(|s| s.item.as_str()).collect();
    assert_eq!(skipped, ["feature_size.png", "accuracy_vs_bytes.png"]);
    assert!(!out.path().join("feature_size.png").exists());
    assert!(out.path().join("latency.png").exists());
}

#[test]
fn a_wire_overhead_is_stated_in_the_report_and_raises_cloud_only_on_3g_by_8_o_over_nb() {
    let out = tempfile::tempdir().unwrap();
    let plain = write_report(&paper_inputs(), out.path()).unwrap();
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(!md.contains("per-image overhead"), "{md}");
    let mut inputs = paper_inputs();
    inputs.cloud.wire_overhead_bytes = Some(110.0);
    let wired = write_report(&inputs, out.path()).unwrap();
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("110 B of per-image overhead"), "{md}");
    let cloud_3g = |files: &bottlenet_report::ReportFiles| {
        files
            .tables
            .table5
            .iter()
            .find(|r| r.setup == Setup::CloudOnly && r.network.as_deref() == Some("3G"))
            .unwrap()
            .latency_ms
    };
    // 8·110 B over 1.1 Mbit/s = 0.8 ms.
    let extra = cloud_3g(&wired) - cloud_3g(&plain);
    assert!((extra - 0.8).abs() < 1e-9, "{extra}");
}

#[test]
fn a_merged_search_with_aware_and_naive_points_draws_fig_7_at_the_requested_size() {
    // A small search at RB1, c' = 1, s = 2 over qualities, both modes, plus RB2; the figures
    // follow the shape of §3.3 (naive loses much at low quality) but are made up for the plot.
    let mut records = Vec::new();
    for quality in [5u8, 10, 20, 40, 80] {
        let q = f64::from(quality);
        for (mode, loss) in [(SearchMode::Aware, 6.0 / q), (SearchMode::Naive, 360.0 / q)] {
            let config = SearchConfig {
                split: 1,
                c_prime: 1,
                s: 2,
                quality,
                mode,
                codec: "jpeg-abbrev".into(),
                bits: 8,
            };
            records.push(config.record(
                Measurement {
                    accuracy: (76.1 - loss).max(1.0),
                    mean_bytes: 60.0 + 4.0 * q,
                    p95_bytes: 70.0 + 4.0 * q,
                    seconds: 1.0,
                },
                format!("runs/{}", config.id()),
            ));
        }
    }
    let rb2 = SearchConfig {
        split: 2,
        c_prime: 1,
        s: 2,
        quality: 20,
        mode: SearchMode::Aware,
        codec: "jpeg-abbrev".into(),
        bits: 8,
    };
    records.push(rb2.record(
        Measurement {
            accuracy: 75.0,
            mean_bytes: 150.0,
            p95_bytes: 160.0,
            seconds: 1.0,
        },
        "runs/rb2",
    ));
    let outcome = merge_records(records, 76.1, 2.0).unwrap();
    assert_eq!(
        outcome.chosen[0].id, "RB1-c1-s2-q5",
        "aware q5 loses 1.2 points: fewest bytes"
    );

    let dir = profiles();
    let mobile = bottlenet_partition::Profile::load(dir.join("paper-tx2-mobile.json")).unwrap();
    let cloud = bottlenet_partition::Profile::load(dir.join("paper-1080ti-cloud.json")).unwrap();
    let mut inputs = ReportInputs::from_search(
        &outcome,
        "resnet50",
        "test",
        CloudOnlyResult {
            bytes: 26_766.0,
            accuracy: 76.1,
            quality: None,
        },
        mobile,
        cloud,
    )
    .unwrap();
    assert_eq!(inputs.accuracy_points.len(), 10);
    assert!(
        inputs
            .accuracy_points
            .iter()
            .any(|p| p.mode == SearchMode::Naive && p.quality == 20)
    );
    inputs.plot_size = (800, 500);
    inputs.mobile_power_w = None;
    inputs.mobile.power_w = None;

    let out = tempfile::tempdir().unwrap();
    let files = write_report(&inputs, out.path()).unwrap();
    assert!(
        (files.tables.mobile_power_w - 1.3).abs() < 1e-12,
        "default PM when the profile has none"
    );
    assert_eq!(files.tables.table4.len(), 2);
    let path = out.path().join("accuracy_vs_bytes.png");
    assert!(files.written.contains(&path));
    assert_eq!(png_size(&path), (800, 500));
    assert_eq!(png_size(&out.path().join("energy.png")), (800, 500));
    assert_eq!(files.skipped.len(), 1, "{:?}", files.skipped);
    let best = files
        .tables
        .table5
        .iter()
        .find(|r| r.setup == Setup::BottleNet)
        .unwrap();
    assert_eq!(best.candidate, "RB1");
}

#[test]
fn bad_fig_7_points_are_rejected() {
    let mut inputs = paper_inputs();
    inputs.accuracy_points = vec![AccuracyPoint {
        mode: SearchMode::Aware,
        quality: 20,
        mean_bytes: 0.0,
        accuracy: 70.0,
    }];
    let err = write_report(&inputs, tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(err.to_string().contains("mean bytes"), "{err}");
}

/// Regression: report files were written in place (`fs::write`), so a crash left half a table
/// and a file of the same name that is a hard link (a user's copy, a backup) was overwritten
/// through the link. Every file — Markdown, CSV, PNG — must be replaced by a rename instead, and
/// no temporary file may stay behind.
#[test]
fn report_files_were_rewritten_in_place_instead_of_replaced_atomically() {
    let mut inputs = paper_inputs();
    inputs.feature_sizes = Some(resnet50_feature_sizes());
    let fresh = tempfile::tempdir().unwrap();
    let names: Vec<String> = write_report(&inputs, fresh.path())
        .unwrap()
        .written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for kind in [".md", ".csv", ".png"] {
        assert!(names.iter().any(|n| n.ends_with(kind)), "no {kind} file in {names:?}");
    }

    let out = tempfile::tempdir().unwrap();
    for name in &names {
        let keep = out.path().join(format!("keep-{name}"));
        std::fs::write(&keep, b"the user's copy").unwrap();
        std::fs::hard_link(&keep, out.path().join(name)).unwrap();
    }
    write_report(&inputs, out.path()).unwrap();
    for name in &names {
        let keep = std::fs::read(out.path().join(format!("keep-{name}"))).unwrap();
        assert_eq!(keep, b"the user's copy", "{name} was rewritten through its hard link");
        let written = std::fs::read(out.path().join(name)).unwrap();
        assert_eq!(written, std::fs::read(fresh.path().join(name)).unwrap(), "{name}");
    }
    let mut left: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected: Vec<String> =
        names.iter().flat_map(|n| [n.clone(), format!("keep-{n}")]).collect();
    expected.sort();
    assert_eq!(left, expected, "temporary files left behind");
}
