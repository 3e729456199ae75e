//! `bottlenet export` checked in onnxruntime (issue #13 items 4–5): every exported file gives
//! burn's outputs within 1e-4 on real test images, and the two halves with our codec between them
//! (quantize → tile → JPEG → frame → decode, paper eq. 1 and §2.2) give `bottlenet eval`'s top-1.
//!
//! onnxruntime runs in Python (`scripts/onnx_run.py`): `$BOTTLENET_PYTHON`, else `python3`, with
//! onnxruntime, numpy and onnx (`.ci/run` installs them into a venv). Without them the tests say
//! so and pass, except under `CI`, where they fail.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use assert_cmd::Command;
use bottlenet_codec::{FeatureTensor, Shape};
use bottlenet_data::{BatchOptions, Batcher, embedded_subset};
use bottlenet_model::onnx::{FEATURES, IMAGE, LOGITS, OnnxModel, export_cloud, export_full, export_mobile};
use bottlenet_model::{Arch, BottleNet, BottleNetConfig, Bundle, CodecMode, DeviceChoice};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use serde_json::Value;
use std::path::{Path, PathBuf};

const IMAGES: usize = 200;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python that runs onnxruntime, or `None` (after saying why) when it is missing outside CI.
fn onnx_python() -> Option<PathBuf> {
    let python = std::env::var_os("BOTTLENET_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let probe = std::process::Command::new(&python).args(["-c", "import onnxruntime, numpy, onnx"]).output();
    let why = match probe {
        Ok(out) if out.status.success() => return Some(python),
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("import failed").to_string(),
        Err(e) => e.to_string(),
    };
    let message = format!("{} cannot run onnxruntime ({why}); set BOTTLENET_PYTHON to a Python with `pip install onnxruntime numpy onnx`", python.display());
    assert!(std::env::var_os("CI").is_none(), "CI is set and {message}");
    eprintln!("skipping the onnxruntime check: {message}");
    None
}

fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new().default_dtype().shape(&dims).writer(file).begin_nd().unwrap();
    writer.extend(data.iter().copied()).unwrap();
    writer.finish().unwrap();
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

/// Runs each `(model, input, output)` through `scripts/onnx_run.py --check`; returns its JSON lines.
fn run_onnxruntime(python: &Path, jobs: &[(&Path, &Path, &Path)]) -> Vec<Value> {
    let mut cmd = std::process::Command::new(python);
    cmd.arg(repo().join("scripts/onnx_run.py")).arg("--check");
    for (model, input, output) in jobs {
        cmd.args([model, input, output]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "onnx_run.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn host(x: Tensor<4>) -> Vec<f32> {
    x.into_data().try_to_vec::<f32>().unwrap()
}

fn host2(x: Tensor<2>) -> Vec<f32> {
    x.into_data().try_to_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn argmax_rows(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes)
        .map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (k, &v)| if v > best.1 { (k, v) } else { best }).0)
        .collect()
}

/// The first `IMAGES` embedded test images (normalised as the data crate serves them) and labels.
fn test_images() -> ([usize; 4], Vec<f32>, Vec<u32>) {
    let pair = embedded_subset().unwrap();
    let batcher = Batcher::new(pair.test.clone(), BatchOptions::eval(IMAGES)).unwrap();
    let batch = batcher.epoch(0).next().unwrap().unwrap();
    (batch.shape, batch.pixels, batch.labels)
}

#[test]
fn exported_bundle_matches_burn_and_the_halves_with_our_codec_match_eval() {
    let Some(python) = onnx_python() else { return };
    let bundle = repo().join("models/fashion-compact");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("onnx");
    let exported = Command::cargo_bin("bottlenet").unwrap().args(["export", "--bundle"]).arg(&bundle).args(["--split", "RB1", "--json", "--out"]).arg(&out).output().unwrap();
    assert!(exported.status.success(), "export failed: {}", String::from_utf8_lossy(&exported.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&exported.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["half"].as_str().unwrap()).collect::<Vec<_>>(), ["mobile", "cloud", "full"]);
    let (mobile_onnx, cloud_onnx, full_onnx) = (out.join("mobile/RB1.onnx"), out.join("cloud/RB1.onnx"), out.join("full.onnx"));

    // burn's reference outputs on the same images.
    let device = DeviceChoice::Flex.device().unwrap();
    let (shape, pixels, labels) = test_images();
    let images = || Tensor::<4>::from_data(TensorData::new(pixels.clone(), shape), &device);
    let mobile = Bundle::load_mobile(&bundle, &device).unwrap();
    let cloud = Bundle::load_cloud(&bundle, &device).unwrap();
    let full = Bundle::load_full(&bundle, &device).unwrap().unwrap();
    let (phone, server) = (mobile.half(1).unwrap(), cloud.half(1).unwrap());
    let features = phone.features(images()).unwrap();
    let reduced = features.dims();
    let features_ref = host(features.clone());
    let cloud_ref = host2(server.logits(features).unwrap());
    let full_ref = host2(full.forward(images(), CodecMode::None).unwrap());

    // 1. Each file alone, on real inputs, within 1e-4 of burn.
    let p = |name: &str| tmp.path().join(name);
    write_npy(&p("images.npy"), &shape, &pixels);
    write_npy(&p("features.npy"), &reduced, &features_ref);
    let runs = run_onnxruntime(
        &python,
        &[
            (&mobile_onnx, &p("images.npy"), &p("ort-features.npy")),
            (&cloud_onnx, &p("features.npy"), &p("ort-cloud.npy")),
            (&full_onnx, &p("images.npy"), &p("ort-full.npy")),
        ],
    );
    let names: Vec<(&str, &str)> = runs.iter().map(|r| (r["input"]["name"].as_str().unwrap(), r["output"]["name"].as_str().unwrap())).collect();
    assert_eq!(names, [(IMAGE, FEATURES), (FEATURES, LOGITS), (IMAGE, LOGITS)]);
    assert_eq!(runs[0]["input"]["shape"], serde_json::json!(["batch", 1, 28, 28]));
    assert_eq!(runs[0]["output"]["shape"], serde_json::json!(["batch", 1, 14, 14]));
    let (ort_shape, ort_features) = read_npy(&p("ort-features.npy"));
    assert_eq!(ort_shape, reduced);
    for (what, ours, theirs) in [
        ("phone half", &features_ref, &ort_features),
        ("server half", &cloud_ref, &read_npy(&p("ort-cloud.npy")).1),
        ("full network", &full_ref, &read_npy(&p("ort-full.npy")).1),
    ] {
        let diff = max_abs_diff(ours, theirs);
        eprintln!("{what}: max |burn − onnxruntime| = {diff:e} over {IMAGES} images");
        assert!(diff <= 1e-4, "{what}: onnxruntime differs from burn by {diff}");
    }

    // 2. Phone half in onnxruntime → our codec (the split's own parameters) → server half in
    //    onnxruntime; top-1 must equal `bottlenet eval` on the same images.
    let params = mobile.manifest.entry(1).unwrap().codec_params();
    let [_, c, h, w] = reduced;
    let per = c * h * w;
    let mut decoded = Vec::with_capacity(ort_features.len());
    let mut bytes = 0;
    for sample in ort_features.chunks(per) {
        let frame = bottlenet_codec::encode(&FeatureTensor::new(Shape::new(c, h, w), sample.to_vec()).unwrap(), &params).unwrap();
        bytes += frame.len();
        decoded.extend(bottlenet_codec::decode(&frame).unwrap().data);
    }
    write_npy(&p("decoded.npy"), &reduced, &decoded);
    run_onnxruntime(&python, &[(&cloud_onnx, &p("decoded.npy"), &p("ort-split.npy"))]);
    let predicted = argmax_rows(&read_npy(&p("ort-split.npy")).1, 10);
    let correct = predicted.iter().zip(&labels).filter(|(p, l)| **p == **l as usize).count();

    let eval = Command::cargo_bin("bottlenet")
        .unwrap()
        .current_dir(repo())
        .args(["eval", "--bundle", "models/fashion-compact", "--split", "RB1", "--data", "data/fashion-mnist-subset", "--limit", &IMAGES.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(eval.status.success(), "eval failed: {}", String::from_utf8_lossy(&eval.stderr));
    let report: Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(report["images"], IMAGES);
    let eval_correct = (report["accuracy"].as_f64().unwrap() * IMAGES as f64).round() as usize;
    let mean_bytes = bytes as f64 / IMAGES as f64;
    eprintln!("onnxruntime halves + our codec: {correct}/{IMAGES} correct, {mean_bytes:.1} B/frame; bottlenet eval: {eval_correct}/{IMAGES}, {} B/frame", report["mean_bytes"]);
    assert_eq!(correct, eval_correct, "top-1 through onnxruntime ({correct}/{IMAGES}) differs from bottlenet eval ({eval_correct}/{IMAGES})");
}

/// Exports `net`'s halves and whole graph, runs them in onnxruntime on `x` and compares with
/// burn, relative to the output's scale (random weights give large activations).
fn check_random_network(python: &Path, config: &BottleNetConfig, batch: usize, device: &Device) {
    let net = BottleNet::new(config, device).unwrap();
    let [c, hh, ww] = config.input_shape;
    let x = Tensor::<4>::random([batch, c, hh, ww], Distribution::Normal(0.0, 1.0), device);
    let (mobile, cloud) = (net.mobile_half().unwrap(), net.cloud_half().unwrap());
    let features = mobile.features(x.clone()).unwrap();
    let expect = [
        (export_mobile(&mobile).unwrap(), host(x.clone()), x.dims().to_vec(), host(features.clone())),
        (export_cloud(&cloud).unwrap(), host(features.clone()), features.dims().to_vec(), host2(cloud.logits(features).unwrap())),
        (export_full(&net).unwrap(), host(x.clone()), x.dims().to_vec(), host2(net.forward(x, CodecMode::Identity).unwrap())),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<[PathBuf; 3]> = (0..expect.len()).map(|k| ["onnx", "in.npy", "out.npy"].map(|e| tmp.path().join(format!("{k}.{e}")))).collect();
    for ((model, input, shape, _), [onnx, npy, _]) in expect.iter().zip(&files) {
        std::fs::write(onnx, model.to_bytes()).unwrap();
        write_npy(npy, shape, input);
        // The bytes parse back into the same model.
        assert_eq!(&OnnxModel::from_bytes(&std::fs::read(onnx).unwrap()).unwrap(), model);
    }
    let jobs: Vec<(&Path, &Path, &Path)> = files.iter().map(|[a, b, c]| (a.as_path(), b.as_path(), c.as_path())).collect();
    run_onnxruntime(python, &jobs);
    for ((model, _, _, ours), [_, _, out]) in expect.iter().zip(&files) {
        let theirs = read_npy(out).1;
        let scale = ours.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(ours, &theirs);
        let what = format!("{} {} {}", config.arch, config.split_name(), model.metadata("bottlenet.half").unwrap());
        eprintln!("{what}: max |burn − onnxruntime| = {diff:e} (output scale {scale:e})");
        assert!(diff <= 1e-4 * scale, "{what}: onnxruntime differs from burn by {diff} at scale {scale}");
    }
}

/// Bottleneck blocks, the 7×7 stem and max-pool (ResNet-50), and a spatial factor whose
/// transposed conv needs output padding (s = 4 on 14×14: 4×4, restored with o = 1).
#[test]
fn random_resnet50_and_compact_halves_match_burn_in_onnxruntime() {
    let Some(python) = onnx_python() else { return };
    let device = DeviceChoice::Flex.device().unwrap();
    check_random_network(&python, &BottleNetConfig::new(Arch::ResNet50, [3, 64, 64], 10).with_split(4, 2, 2), 2, &device);
    check_random_network(&python, &BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(3, 3, 4), 3, &device);
}

#[test]
fn export_refuses_an_unknown_split_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("bottlenet").unwrap().current_dir(repo()).args(["export", "--bundle", "models/fashion-compact", "--split", "RB5", "--out"]).arg(tmp.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("RB5") && stderr.contains("RB1"), "{stderr}");
}
