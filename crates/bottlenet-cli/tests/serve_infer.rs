//! The CLI's bundle adapters behind the real gRPC server: for every split, the phone half's
//! frames answered by the server give the logits of the in-process
//! `BottleNet::forward(x, CodecMode::Aware)`; a malformed frame is INVALID_ARGUMENT and the server
//! keeps answering; the client's split, cloud-only and mobile-only paths all answer.
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

use bottlenet_model::{Arch, BottleNet, BottleNetConfig, Bundle, CodecMode, DeviceChoice, Normalization, SplitStats};
use bottlenet_runtime::proto::InferRequest;
use bottlenet_runtime::proto::bottle_net_client::BottleNetClient;
use bottlenet_runtime::{Choice, Client, ClientOptions, CloudHalf, Image, PhoneHalf, Server, ServerConfig, SplitMode, top_k};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use serving::{BundleCloud, BundlePhone, model_name};
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

const CLASSES: usize = 10;
const MEAN: f32 = 0.286;
const STD: f32 = 0.353;

/// A compact network whose BatchNorm running statistics moved (one training-mode pass), as an
/// inference copy.
fn net(j: usize, c_prime: usize, s: usize, seed: u64) -> BottleNet {
    let ad = DeviceChoice::Flex.device().unwrap().autodiff();
    ad.seed(seed);
    let config = BottleNetConfig::new(Arch::Compact, [1, 28, 28], CLASSES).with_split(j, c_prime, s);
    let net = BottleNet::new(&config, &ad).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(pixels(8 * 784, seed).iter().map(|&p| f32::from(p) / 255.0).collect::<Vec<_>>(), [8, 1, 28, 28]), &ad);
    let _ = net.forward(x, CodecMode::Identity).unwrap();
    net.valid()
}

/// Deterministic pseudo-random bytes (an LCG): images that differ from one another.
fn pixels(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

fn reference_logits(net: &BottleNet, image: &Image) -> Vec<f32> {
    let device = DeviceChoice::Flex.device().unwrap();
    let x: Vec<f32> = image.pixels.iter().map(|&p| (f32::from(p) / 255.0 - MEAN) / STD).collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [1, 1, 28, 28]), &device);
    net.forward(x, CodecMode::Aware).unwrap().into_data().try_into_vec_as::<f32>().unwrap()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_bundle_matches_in_process_forward() {
    tokio::time::timeout(Duration::from_secs(300), run()).await.expect("test ran past its limit");
}

async fn run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let nets = vec![net(2, 4, 2, 7), net(5, 2, 1, 8)];
    let names: Vec<String> = (0..CLASSES).map(|k| format!("class-{k}")).collect();
    let mut bundle = Bundle::new(Arch::Compact, nets[0].config().width, [1, 28, 28], CLASSES, Normalization { mean: vec![MEAN], std: vec![STD] }, names).unwrap();
    for n in &nets {
        bundle.add(n, SplitStats::default()).unwrap();
    }
    bundle.save(&dir).unwrap();

    let device = DeviceChoice::Flex.device().unwrap();
    let cloud = BundleCloud::new(Bundle::load_cloud(&dir, &device).unwrap(), device.clone()).with_full(Bundle::load_mobile(&dir, &device).unwrap());
    let phone = BundlePhone::new(Bundle::load_mobile(&dir, &device).unwrap(), device.clone()).with_full(Bundle::load_cloud(&dir, &device).unwrap());
    let splits = ["RB2".to_string(), "RB5".to_string()];
    assert_eq!(cloud.splits(), splits);
    assert_eq!(phone.splits(), splits);
    let model = model_name(bundle.manifest());
    assert_eq!(cloud.model_name(), model);
    let cloud = Arc::new(cloud);
    let phone = Arc::new(phone);

    let images: Vec<Image> = (0..3).map(|i| Image::new(1, 28, 28, pixels(784, 100 + i)).unwrap()).collect();

    // In process: phone frame → codec decode → server tail equals the aware forward pass.
    for (split, net) in splits.iter().zip(&nets) {
        for image in &images {
            // The phone sends version-2 frames: decoded against the split's manifest.
            let frame = phone.encode(split, image).unwrap();
            let spec = bottlenet_codec::FrameSpec { shape: cloud.feature_shape(split).unwrap(), params: cloud.codec_params(split).unwrap() };
            let features = bottlenet_codec::decode_with(&frame, &spec).unwrap();
            assert_eq!(frame[0], bottlenet_codec::VERSION_V2);
            let got = cloud.tail(split, &[features]).unwrap().pop().unwrap();
            let want = reference_logits(net, image);
            assert!(max_abs_diff(&got, &want) < 1e-4, "{split}: {got:?} vs {want:?}");
        }
    }
    // Mobile-only is the first split's whole network.
    let got = phone.full(&images[0]).unwrap();
    assert!(max_abs_diff(&got, &reference_logits(&nets[0], &images[0])) < 1e-4);

    // Over gRPC, on 127.0.0.1:0.
    let config = ServerConfig { addr: ([127, 0, 0, 1], 0).into(), max_batch: 4, workers: 1, ..ServerConfig::default() };
    let server = Server::bind(config, vec![cloud.clone() as Arc<dyn CloudHalf>]).await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let mut rpc = BottleNetClient::connect(url.clone()).await.unwrap();
    let request = |split: &str, frame: Vec<u8>| InferRequest { model: model.clone(), split: split.to_string(), frame, request_id: 1, top_k: CLASSES as u32 };

    for (split, net) in splits.iter().zip(&nets) {
        for image in &images {
            let frame = phone.encode(split, image).unwrap();
            let reply = rpc.infer(request(split, frame)).await.unwrap().into_inner();
            let want = top_k(&reference_logits(net, image), CLASSES, cloud.class_names());
            assert_eq!(reply.top_k.len(), CLASSES);
            assert_eq!(reply.top_k[0].index as usize, want[0].index, "{split}: top-1");
            for score in &reply.top_k {
                let expected = want.iter().find(|c| c.index == score.index as usize).unwrap();
                assert!((score.score - expected.score).abs() < 1e-4, "{split}: class {} {} vs {}", score.index, score.score, expected.score);
                assert_eq!(score.label, expected.label);
            }
        }
    }

    // A malformed frame is refused as INVALID_ARGUMENT, and the server still answers.
    let mut bad = phone.encode("RB2", &images[0]).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 0x5A;
    for frame in [bad, vec![1, 2, 3], phone.encode("RB5", &images[0]).unwrap()] {
        let status = rpc.infer(request("RB2", frame)).await.expect_err("malformed frame");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let frame = phone.encode("RB2", &images[1]).unwrap();
        let reply = rpc.infer(request("RB2", frame)).await.unwrap().into_inner();
        assert_eq!(reply.top_k[0].index as usize, argmax(&reference_logits(&nets[0], &images[1])));
    }

    // The runtime's client on each path.
    for (mode, served) in [
        (SplitMode::Fixed("RB5".into()), Choice::Split("RB5".into())),
        (SplitMode::CloudOnly, Choice::CloudOnly),
        (SplitMode::MobileOnly, Choice::MobileOnly),
    ] {
        let mut options = ClientOptions::new(mode);
        options.timeout = Duration::from_secs(30);
        let client = Client::connect(&url, phone.clone() as Arc<dyn PhoneHalf>, options).await.unwrap();
        let answer = client.infer(&images[2]).await.unwrap();
        assert_eq!(answer.served_by, served);
        assert!(!answer.fell_back, "{served:?} fell back");
        assert_eq!(answer.top_k.len(), 5);
        if served == Choice::Split("RB5".into()) {
            assert_eq!(answer.top_k[0].index, argmax(&reference_logits(&nets[1], &images[2])));
            assert!(answer.bytes > 0);
        }
        if served == Choice::MobileOnly {
            assert_eq!(answer.top_k[0].index, argmax(&reference_logits(&nets[0], &images[2])));
            assert_eq!(answer.bytes, 0);
        }
    }

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

/// The CPU engines of the exported graphs (tract; oneDNN and XNNPACK where built) answer as
/// burn flex does on the shipped bundle's real test images: the server tail on the same frames,
/// the cloud-only and mobile-only networks, and the phone head before eq. 1's quantizer.
#[cfg(feature = "tract")]
#[test]
fn tract_engine_gives_burns_answers_on_the_shipped_bundle() {
    exported_engine_gives_burns_answers(engine::Engine::Tract);
}

#[cfg(feature = "xnnpack")]
#[test]
fn xnnpack_engine_gives_burns_answers_on_the_shipped_bundle() {
    if !engine::xnnpack_built() {
        assert!(std::env::var_os("CI").is_none(), "CI installs libxnnpack-dev, yet this build has no XNNPACK");
        let refused = engine::Engine::resolve(Some(engine::Engine::Xnnpack), DeviceChoice::Flex).unwrap_err().to_string();
        assert!(refused.contains("libxnnpack-dev"), "{refused}");
        eprintln!("checked the refusal only: this build has no XNNPACK");
        return;
    }
    exported_engine_gives_burns_answers(engine::Engine::Xnnpack);
}

#[cfg(feature = "onednn")]
#[test]
fn onednn_engine_gives_burns_answers_on_the_shipped_bundle() {
    if !engine::onednn_built() {
        assert!(std::env::var_os("CI").is_none(), "CI installs libdnnl-dev, yet this build has no oneDNN");
        let refused = engine::Engine::resolve(Some(engine::Engine::Onednn), DeviceChoice::Flex).unwrap_err().to_string();
        assert!(refused.contains("libdnnl-dev"), "{refused}");
        eprintln!("checked the refusal only: this build has no oneDNN");
        return;
    }
    exported_engine_gives_burns_answers(engine::Engine::Onednn);
}

/// `--engine auto` (the CPU default where two or more are built): each graph on whichever of
/// oneDNN, XNNPACK and tract was fastest at load, with burn's answers all the same.
#[cfg(feature = "tract")]
#[test]
fn auto_engine_gives_burns_answers_on_the_shipped_bundle() {
    if engine::exported_engines().len() < 2 {
        assert!(std::env::var_os("CI").is_none(), "CI installs libdnnl-dev and libxnnpack-dev, yet this build has only one CPU engine");
        let refused = engine::Engine::resolve(Some(engine::Engine::Auto), DeviceChoice::Flex).unwrap_err().to_string();
        assert!(refused.contains("libdnnl-dev") && !refused.contains('\n'), "{refused}");
        eprintln!("checked the refusal only: this build has one CPU engine");
        return;
    }
    assert_eq!(engine::Engine::resolve(None, DeviceChoice::Flex).unwrap(), engine::Engine::Auto);
    exported_engine_gives_burns_answers(engine::Engine::Auto);
}

#[cfg(feature = "exported-graphs")]
fn exported_engine_gives_burns_answers(other: engine::Engine) {
    use bottlenet_data::{Augment, embedded_subset};
    use engine::Engine;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fashion-compact");
    let device = DeviceChoice::Flex.device().unwrap();
    let network = || Bundle::load_full(&dir, &device).unwrap();
    let clouds = [Engine::Burn, other].map(|e| {
        BundleCloud::new(Bundle::load_cloud(&dir, &device).unwrap(), device.clone()).with_network(network()).with_engine(e).unwrap()
    });
    let phones = [Engine::Burn, other].map(|e| {
        BundlePhone::new(Bundle::load_mobile(&dir, &device).unwrap(), device.clone()).with_network(network()).with_engine(e).unwrap()
    });
    let split = "RB1";
    let spec = bottlenet_codec::FrameSpec { shape: clouds[0].feature_shape(split).unwrap(), params: clouds[0].codec_params(split).unwrap() };
    let data = embedded_subset().unwrap();
    let (mut identical, images) = (0, 16);
    for i in 0..images {
        let raw = data.test.raw(i, Augment::Eval).unwrap();
        let image = Image::new(raw.image.channels, raw.image.height, raw.image.width, raw.image.planar()).unwrap();
        let frames = [phones[0].encode(split, &image).unwrap(), phones[1].encode(split, &image).unwrap()];
        identical += usize::from(frames[0] == frames[1]);
        // The head's output (eq. 1's input) agrees within 1e-4 of its scale.
        let [burn_f, tract_f] = [&phones[0], &phones[1]].map(|p| p.features(split, &image).unwrap());
        let scale = burn_f.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&burn_f.data, &tract_f.data);
        assert!(diff <= 1e-4 * scale, "image {i}: the phone head differs by {diff} (scale {scale}) between burn and {other}");
        let burn_z = bottlenet_codec::decode_with(&frames[0], &spec).unwrap();
        let tails = [clouds[0].tail(split, &[burn_z.clone()]).unwrap(), clouds[1].tail(split, &[burn_z]).unwrap()];
        let diff = max_abs_diff(&tails[0][0], &tails[1][0]);
        assert!(diff <= 1e-4, "image {i}: the server tail differs by {diff} between burn and {other}");
        let fulls = [phones[0].full(&image).unwrap(), phones[1].full(&image).unwrap()];
        assert!(max_abs_diff(&fulls[0], &fulls[1]) <= 1e-4, "image {i}: mobile-only differs between engines");
        let photo = phones[0].jpeg_input(&image, 90).unwrap();
        let inputs = [clouds[0].decode_image(&photo).unwrap(), clouds[1].decode_image(&photo).unwrap()];
        let clouds_full = [clouds[0].full(&inputs[..1]).unwrap(), clouds[1].full(&inputs[1..]).unwrap()];
        assert!(max_abs_diff(&clouds_full[0][0], &clouds_full[1][0]) <= 1e-4, "image {i}: cloud-only differs between engines");
    }
    eprintln!("{identical} of {images} RB1 frames byte-identical between the burn and {other} phones");
}
