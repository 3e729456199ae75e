//! The exported ONNX graphs in tract, the pure-Rust engine of cargo feature `tract`
//! (a default feature, so the README's test command runs it): the shipped bundle's
//! phone half, server half and full network, as `bottlenet export` writes them, give flex's outputs
//! within 1e-4 on real test images; `bench --only engines` reports tract, XNNPACK and auto (where built)
//! beside flex; and
//! `bench --only tract-ops` times every node of tract's plans and counts their arithmetic.
#![cfg(feature = "tract")]
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use assert_cmd::Command;
use bottlenet_codec::Shape;
use bottlenet_data::{BatchOptions, Batcher, embedded_subset};
use bottlenet_model::{Bundle, CodecMode, DeviceChoice};
use burn::tensor::{Tensor, TensorData};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::{DatumExt, Framework, InferenceModelExt, IntoRunnable, Tensor as TractTensor, tvec};

const IMAGES: usize = 8;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn host<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Runs the ONNX file at `path` in tract for one fixed input shape: the output's shape and values.
fn tract_run(path: &Path, shape: [usize; 4], input: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let outputs = plan.run(tvec!(TractTensor::from_shape(&shape, input).unwrap().into())).unwrap();
    assert_eq!(outputs.len(), 1, "{} has one output", path.display());
    (outputs[0].shape().to_vec(), outputs[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn shipped_bundle_exported_halves_give_flex_outputs_in_tract() {
    let bundle = repo().join("models/fashion-compact");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("onnx");
    let exported = Command::cargo_bin("bottlenet").unwrap().args(["export", "--bundle"]).arg(&bundle).args(["--split", "RB1", "--out"]).arg(&out).output().unwrap();
    assert!(exported.status.success(), "export failed: {}", String::from_utf8_lossy(&exported.stderr));

    // The first embedded test images, as `bottlenet eval` feeds them.
    let pair = embedded_subset().unwrap();
    let batch = Batcher::new(pair.test.clone(), BatchOptions::eval(IMAGES)).unwrap().epoch(0).next().unwrap().unwrap();
    let (shape, pixels) = (batch.shape, batch.pixels);
    assert_eq!(shape, [IMAGES, 1, 28, 28]);

    // flex: the phone half, the server half on what the split's codec gives back, the full network.
    let device = DeviceChoice::Flex.device().unwrap();
    let images = || Tensor::<4>::from_data(TensorData::new(pixels.clone(), shape), &device);
    let mobile = Bundle::load_mobile(&bundle, &device).unwrap();
    let cloud = Bundle::load_cloud(&bundle, &device).unwrap();
    let full = Bundle::load_full(&bundle, &device).unwrap().unwrap();
    let (phone, server) = (mobile.half(1).unwrap(), cloud.half(1).unwrap());
    let features = phone.features(images()).unwrap();
    let reduced = features.dims();
    let features = host(features);
    let params = mobile.manifest.entry(1).unwrap().codec_params();
    let [n, c, h, w] = reduced;
    let (decoded, _) = bottlenet_codec::roundtrip_batch(&features, n, Shape::new(c, h, w), &params).unwrap();
    let logits = host(server.logits(Tensor::<4>::from_data(TensorData::new(decoded.clone(), reduced), &device)).unwrap());
    let full_logits = host(full.forward(images(), CodecMode::Identity).unwrap());

    for (what, file, input_shape, input, expected_shape, expected) in [
        ("phone half", "mobile/RB1.onnx", shape, &pixels, vec![IMAGES, 1, 14, 14], &features),
        ("server half", "cloud/RB1.onnx", reduced, &decoded, vec![IMAGES, 10], &logits),
        ("full network", "full.onnx", shape, &pixels, vec![IMAGES, 10], &full_logits),
    ] {
        let (got_shape, got) = tract_run(&out.join(file), input_shape, input);
        assert_eq!(got_shape, expected_shape, "{what}: tract's output shape");
        let diff = max_abs_diff(expected, &got);
        eprintln!("{what}: max |flex − tract| = {diff:e} over {IMAGES} images");
        assert!(diff <= 1e-4, "{what}: tract differs from flex by {diff}");
    }
}

/// `bottlenet bench --only GROUP --runs 1 --warmup 0 --json`, which must succeed: its report.
fn bench_report(group: &str, extra: &[&str]) -> Value {
    let output = Command::cargo_bin("bottlenet")
        .unwrap()
        .current_dir(repo())
        .args(["bench", "--only", group, "--runs", "1", "--warmup", "0", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "bench failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn bench_engines_reports_flex_tract_xnnpack_and_onednn_side_by_side() {
    let report = bench_report("engines", &[]);
    let figures = report["figures"].as_array().unwrap();
    // oneDNN and XNNPACK are timed where the build found Debian's libdnnl-dev and
    // libxnnpack-dev, which CI installs.
    let timed = |engine: &str| figures.iter().any(|f| f["name"].as_str().unwrap().contains(engine));
    let (with_onednn, with_xnnpack) = (timed(", onednn "), timed(", xnnpack "));
    assert!((with_onednn && with_xnnpack) || std::env::var_os("CI").is_none(), "CI installs libdnnl-dev and libxnnpack-dev, yet bench engines timed onednn {with_onednn}, xnnpack {with_xnnpack}: {report}");
    // In the order `auto` tries them, then `auto` (where two or more are built): on each graph
    // the one it kept.
    let mut engines: Vec<&str> = Vec::new();
    if with_onednn {
        engines.push(", onednn ");
    }
    if with_xnnpack {
        engines.push(", xnnpack ");
    }
    engines.push(", tract 0.");
    if engines.len() >= 2 {
        engines.push(", auto (");
    }
    // ResNet-50 RB1 and the bundle's RB1: phone half, server half, full network; flex, then
    // each exported-graph engine.
    assert_eq!(figures.len(), 6 * (1 + engines.len()), "{report}");
    for group in figures.chunks(1 + engines.len()) {
        let flex = group[0]["name"].as_str().unwrap();
        assert!(flex.ends_with(", burn flex"), "{flex}");
        let workload = flex.trim_end_matches(", burn flex");
        for (figure, engine) in group[1..].iter().zip(&engines) {
            let name = figure["name"].as_str().unwrap();
            assert!(name.contains(engine) && name.split(engine).next().unwrap() == workload, "{flex} / {name}: one workload per group");
            let short = engine.trim_start_matches(", ").split(' ').next().unwrap();
            let note = figure["note"].as_str().unwrap();
            assert!(note.contains(&format!("max |{short} - flex|")), "{figure}");
            // "… (2.3e-6 of it)": the largest difference relative to the output's scale.
            let relative: f64 = note.rsplit('(').next().unwrap().split(' ').next().unwrap().parse().unwrap();
            assert!(relative < 1e-4, "{name}: {short} and flex differ by {relative} of the output's scale");
        }
        if engines.len() >= 3 {
            let auto = group[engines.len()]["name"].as_str().unwrap();
            let kept = |name: &str| auto.ends_with(&format!("({name})")) && timed(&format!(", {name} "));
            assert!(kept("onednn") || kept("xnnpack") || kept("tract"), "{auto}: auto must name an engine it timed, the one it kept");
        }
        for f in group {
            assert_eq!(f["group"], "engines");
            assert!(f["median"].as_f64().unwrap() > 0.0, "{f}");
        }
    }
    for what in ["resnet50 RB1 phone half", "resnet50 RB1 server half", "resnet50 full network", "compact RB1 phone half", "compact RB1 server half", "compact full network"] {
        assert!(figures.iter().any(|f| f["name"].as_str().unwrap().starts_with(what)), "no figure for {what}: {report}");
    }
}

#[test]
fn bench_tract_ops_times_every_node_and_counts_resnet50s_multiply_adds() {
    let onnx_out = tempfile::tempdir().unwrap();
    let report = bench_report("tract-ops", &["--onnx-out", onnx_out.path().to_str().unwrap()]);
    let figures = report["figures"].as_array().unwrap();
    let name = |f: &Value| f["name"].as_str().unwrap().to_string();
    let gfma = |f: &Value| -> f64 {
        let note = f["note"].as_str().unwrap();
        note.split(" GFMA").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap()
    };
    let mut graph_gfma = Vec::new();
    for graph in ["resnet50 RB1 phone half", "resnet50 RB1 server half", "resnet50 full network"] {
        let of_graph: Vec<&Value> = figures.iter().filter(|f| name(f).starts_with(&format!("{graph}: "))).collect();
        for whole in ["whole, 1 thread", "threads, after 25 ms idle", "whole, every node timed"] {
            assert!(of_graph.iter().any(|f| name(f).contains(whole)), "{graph}: no {whole} figure in {report}");
        }
        let timed = of_graph.iter().find(|f| name(f).ends_with("whole, every node timed")).unwrap();
        let kinds: Vec<&&Value> = of_graph.iter().filter(|f| !name(f).contains(": whole")).collect();
        // With one run each kind's figure is that run's total: the nodes' times lie inside the
        // run's, so their sum cannot exceed it, and the matrix products are most of the work.
        let sum: f64 = kinds.iter().map(|f| f["median"].as_f64().unwrap()).sum();
        let whole_ms = timed["median"].as_f64().unwrap();
        assert!(sum <= whole_ms * 1.0001 && sum > 0.5 * whole_ms, "{graph}: kinds sum to {sum} ms of {whole_ms} ms");
        // The stem's max-pool runs as our separable pool (tract_pool.rs), not tract's own.
        if graph != "resnet50 RB1 server half" {
            assert!(kinds.iter().any(|f| name(f).ends_with(": SeparableMaxPool")), "{graph}: no SeparableMaxPool in {report}");
        }
        assert!(!kinds.iter().any(|f| name(f).contains("MaxPool") && !name(f).ends_with(": SeparableMaxPool")), "{graph}: tract's own max-pool left in the plan");
        let matmuls: Vec<&&&Value> = kinds.iter().filter(|f| name(f).contains("MatMul [")).collect();
        assert!(!matmuls.is_empty(), "{graph}: no matrix product kind, with its kernel, in {report}");
        // The graph's arithmetic is the sum of its kinds'.
        let kinds_gfma: f64 = kinds.iter().filter(|f| f["note"].as_str().unwrap().contains("GFMA")).map(|f| gfma(f)).sum();
        assert!((kinds_gfma - gfma(timed)).abs() < 0.01, "{graph}: kinds {kinds_gfma} GFMA, graph {}", gfma(timed));
        graph_gfma.push(gfma(timed));
    }
    // ResNet-50 at 224² with the stride on the 3×3 convolutions, as torchvision builds it, is
    // 4.1 G multiply-adds (He et al. 2016, Table 1, give 3.8 G with the stride on the first 1×1);
    // the phone half and the server half hold all of it and the bottleneck's few more.
    let [phone, server, full] = graph_gfma[..] else { unreachable!() };
    assert!((4.0..4.2).contains(&full), "full ResNet-50: {full} GFMA");
    assert!(phone + server >= full && phone + server < full + 0.1, "halves {phone} + {server} GFMA against the full network's {full}");

    // --onnx-out wrote the three graphs it timed, laid out as `bottlenet export` does, for
    // another engine to run: the phone half turns the image into RB1's features, the full
    // network into 1000 logits.
    let image = vec![0.5f32; 3 * 224 * 224];
    let (features, _) = tract_run(&onnx_out.path().join("mobile/RB1.onnx"), [1, 3, 224, 224], &image);
    assert_eq!(features.len(), 4, "phone half output {features:?}");
    let (logits, _) = tract_run(&onnx_out.path().join("full.onnx"), [1, 3, 224, 224], &image);
    assert_eq!(logits, [1, 1000]);
    let [_, c, h, w] = features[..] else { unreachable!() };
    let (restored, _) = tract_run(&onnx_out.path().join("cloud/RB1.onnx"), [1, c, h, w], &vec![0.5; c * h * w]);
    assert_eq!(restored, [1, 1000], "server half output");
}
