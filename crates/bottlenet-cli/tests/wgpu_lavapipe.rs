//! burn's `wgpu` engine agrees with flex (CPU) on this project's workloads: a few training steps,
//! an evaluation's logits, and one request served by a server whose halves run on wgpu. CI runs
//! it on Mesa's software Vulkan (lavapipe: Debian `mesa-vulkan-drivers` + `libvulkan1`); on a
//! machine with a GPU the same test runs there.
//!
//! Tolerance: 1e-3 absolute on logits and on the mean training loss. A single conv2d or matmul
//! was seen within 1e-4 of flex on lavapipe; a whole ResNet sums many of them in another order.
//!
//! It runs in the README's test command (`cargo test --release --workspace`): the crate's
//! dev-dependencies turn on `bottlenet-model/wgpu` for every test build, so no separate build is
//! needed. Under CI (`CI=true`) a machine without lavapipe fails it instead of skipping it. It
//! trains, so it needs the `full` feature (the default).
#![cfg(feature = "full")]
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

#[allow(dead_code)]
#[path = "../src/serving.rs"]
mod serving;
#[allow(dead_code)]
#[path = "../src/engine.rs"]
mod engine;
#[cfg(feature = "tract")]
#[allow(dead_code)]
#[path = "../src/tract_engine.rs"]
mod tract_engine;
#[cfg(feature = "tract")]
#[allow(dead_code)]
#[path = "../src/tract_pool.rs"]
mod tract_pool;
#[cfg(feature = "exported-graphs")]
#[allow(dead_code)]
#[path = "../src/exported_graph.rs"]
mod exported_graph;
#[cfg(feature = "exported-graphs")]
#[allow(dead_code)]
#[path = "../src/engine_trial.rs"]
mod engine_trial;
#[cfg(feature = "xnnpack")]
#[allow(dead_code)]
#[path = "../src/xnnpack_engine.rs"]
mod xnnpack_engine;
#[cfg(feature = "onednn")]
#[allow(dead_code)]
#[path = "../src/onednn_engine.rs"]
mod onednn_engine;
#[cfg(any(feature = "xnnpack", feature = "onednn"))]
#[allow(dead_code)]
#[path = "../src/onnx_nodes.rs"]
mod onnx_nodes;

use bottlenet_data::{Augment, Dataset, embedded_subset};
use bottlenet_model::{Bundle, CodecMode, DeviceChoice};
use bottlenet_runtime::proto::InferRequest;
use bottlenet_runtime::proto::bottle_net_client::BottleNetClient;
use bottlenet_runtime::{CloudHalf, Image, PhoneHalf, Server, ServerConfig, top_k};
use bottlenet_train::{ExperimentConfig, RunOptions, train};
use burn::tensor::{Tensor, TensorData};
use serving::{BundleCloud, BundlePhone};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TOLERANCE: f32 = 1e-3;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// Whether the wgpu path can be tested here; under CI a missing piece is a failure.
fn wgpu_ready() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let missing = if !Path::new("/usr/share/vulkan/icd.d").read_dir().is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("lvp_icd")))) {
        Some("no lavapipe Vulkan driver (/usr/share/vulkan/icd.d/lvp_icd.*.json): apt-get install mesa-vulkan-drivers libvulkan1".to_string())
    } else {
        None
    };
    match missing {
        Some(why) if ci => panic!("wgpu test cannot run under CI: {why}"),
        Some(why) => {
            eprintln!("skipping the wgpu comparison: {why}");
            false
        }
        None => true,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `n` embedded test images, normalised, as one `[n, 1, 28, 28]` batch on `device`.
fn batch(test: &dyn Dataset, n: usize, device: &burn::tensor::Device) -> Tensor<4> {
    let mut pixels = Vec::new();
    for i in 0..n {
        pixels.extend(test.get(i, Augment::Eval).unwrap().pixels);
    }
    Tensor::<4>::from_data(TensorData::new(pixels, [n, 1, 28, 28]), device)
}

fn host(x: Tensor<2>) -> Vec<f32> {
    x.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn wgpu_matches_flex_on_training_evaluation_and_serving() {
    assert!(DeviceChoice::Wgpu.is_available(), "the test build should have burn's wgpu engine (bottlenet-cli's dev-dependency on bottlenet-model/wgpu)");
    if !wgpu_ready() {
        return;
    }
    let flex = DeviceChoice::Flex.device().unwrap();
    let wgpu = DeviceChoice::Wgpu.device().unwrap();
    let adapter = bottlenet_model::device::describe(DeviceChoice::Wgpu, &wgpu);
    eprintln!("wgpu adapter: {adapter}");
    let data = embedded_subset().unwrap();
    let bundle = repo("models/fashion-compact");

    // 1. Evaluation: the shipped baseline's logits on 16 test images.
    let on_flex = Bundle::load_full(&bundle, &flex).unwrap().unwrap();
    let on_wgpu = Bundle::load_full(&bundle, &wgpu).unwrap().unwrap();
    let want = host(on_flex.forward(batch(&*data.test, 16, &flex), CodecMode::None).unwrap());
    let got = host(on_wgpu.forward(batch(&*data.test, 16, &wgpu), CodecMode::None).unwrap());
    let eval_diff = max_abs_diff(&got, &want);
    eprintln!("eval logits, 16 images: max |wgpu − flex| = {eval_diff:.2e}");
    assert!(eval_diff < TOLERANCE, "wgpu logits differ from flex by {eval_diff}");

    // 2. Training: three SGD steps from the shipped baseline's weights (so both engines start
    //    from the same parameters), then a 64-image evaluation.
    let tmp = tempfile::tempdir().unwrap();
    let config_path = tmp.path().join("steps.toml");
    std::fs::write(
        &config_path,
        format!(
            "name = \"wgpu-steps\"\n[model]\narch = \"compact\"\n[train]\nmode = \"baseline\"\nepochs = 1\nbatch_size = 32\noptimizer = \"sgd\"\nlr = 0.01\nsteps_per_epoch = 3\ninit = {:?}\n[data]\ntest_limit = 64\n",
            repo("models/fashion-baseline").display().to_string()
        ),
    )
    .unwrap();
    let config = ExperimentConfig::load(&config_path, &[]).unwrap();
    let run = |device: DeviceChoice| train(&config, &data, &tmp.path().join(device.name()), &RunOptions { quiet: true, device, ..RunOptions::default() }).unwrap();
    let (a, b) = (run(DeviceChoice::Flex), run(DeviceChoice::Wgpu));
    let loss_diff = (a.history[0].loss - b.history[0].loss).abs();
    eprintln!("3 training steps: mean loss flex {:.6}, wgpu {:.6} (|Δ| {loss_diff:.2e}); top-1 on 64 images flex {:.4}, wgpu {:.4}", a.history[0].loss, b.history[0].loss, a.eval.accuracy, b.eval.accuracy);
    assert!(loss_diff < f64::from(TOLERANCE), "training loss differs by {loss_diff}");
    assert!((a.eval.accuracy - b.eval.accuracy).abs() <= 2.0 / 64.0 + 1e-9);

    // 3. Serving: the server's halves on wgpu, the phone on flex, one request over gRPC.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let phone = BundlePhone::new(Bundle::load_mobile(&bundle, &flex).unwrap(), flex.clone());
        let reference = BundleCloud::new(Bundle::load_cloud(&bundle, &flex).unwrap(), flex.clone());
        let cloud = Arc::new(BundleCloud::new(Bundle::load_cloud(&bundle, &wgpu).unwrap(), wgpu.clone()));
        let raw = data.test.raw(0, Augment::Eval).unwrap();
        let image = Image::new(1, 28, 28, raw.image.planar()).unwrap();
        let split = phone.splits().into_iter().next().unwrap();
        let frame = phone.encode(&split, &image).unwrap();
        // A version-2 frame: decoded against the split's manifest.
        let spec = bottlenet_codec::FrameSpec { shape: reference.feature_shape(&split).unwrap(), params: reference.codec_params(&split).unwrap() };
        let want = reference.tail(&split, &[bottlenet_codec::decode_with(&frame, &spec).unwrap()]).unwrap().pop().unwrap();

        let config = ServerConfig { addr: ([127, 0, 0, 1], 0).into(), max_batch: 1, workers: 1, ..ServerConfig::default() };
        let server = Server::bind(config, vec![cloud.clone() as Arc<dyn CloudHalf>]).await.unwrap();
        let url = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        let mut rpc = BottleNetClient::connect(url).await.unwrap();
        let classes = want.len() as u32;
        let request = InferRequest { model: cloud.model_name().to_string(), split: split.clone(), frame, request_id: 1, top_k: classes };
        let reply = tokio::time::timeout(std::time::Duration::from_secs(120), rpc.infer(request)).await.expect("the wgpu server did not answer in time").unwrap().into_inner();
        let expected = top_k(&want, classes as usize, cloud.class_names());
        assert_eq!(reply.top_k[0].index as usize, expected[0].index, "top-1 served on wgpu differs from flex");
        let worst = reply
            .top_k
            .iter()
            .map(|s| (s.score - expected.iter().find(|c| c.index == s.index as usize).unwrap().score).abs())
            .fold(0.0, f32::max);
        eprintln!("served {split} on wgpu: top-1 class {} as on flex, max |Δ softmax| = {worst:.2e}", reply.top_k[0].index);
        assert!(worst < TOLERANCE);
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
    });
}
