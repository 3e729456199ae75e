//! The bottleneck unit restores the exact shape for every split and (c', s); gradients pass the
//! codec round trip (paper §2.2); the phone and server halves together equal the in-process model.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

mod common;

use bottlenet_codec::CodecParams;
use bottlenet_model::{
    Arch, BottleNet, BottleNetConfig, BottleneckUnit, CloudHalf, CodecMode, MobileHalf, codec_straight_through,
};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use common::{device, images, max_abs, max_abs_diff, values};

const C_PRIMES: [usize; 5] = [1, 2, 4, 8, 16];
const FACTORS: [usize; 3] = [1, 2, 4];

/// Runs reduction and restoration for each `(split, c', s)` and checks the shapes.
fn check_grid(arch: Arch, width: usize, input: [usize; 3], splits: &[usize]) -> usize {
    let device = device();
    let mut cases = 0;
    for &j in splits {
        for c_prime in C_PRIMES {
            for s in FACTORS {
                let config = BottleNetConfig::new(arch, input, 10).with_width(width).with_split(j, c_prime, s);
                let spec = config.bottleneck().unwrap().unwrap();
                let unit = BottleneckUnit::new(&spec, &device).unwrap();
                let [c, h, w] = spec.input;
                let x = images([2, c, h, w], 3, &device);
                let z = unit.reduction.forward(x).unwrap();
                assert_eq!(z.dims(), [2, c_prime, h.div_ceil(s), w.div_ceil(s)], "{arch} RB{j} c'={c_prime} s={s}");
                assert_eq!(z.dims()[1..], spec.reduced_shape());
                let y = unit.restoration.forward(z).unwrap();
                assert_eq!(y.dims(), [2, c, h, w], "{arch} RB{j} c'={c_prime} s={s}: restored shape");
                cases += 1;
            }
        }
    }
    cases
}

#[test]
fn compact_grid_restores_exact_shapes() {
    assert_eq!(check_grid(Arch::Compact, 1, [1, 28, 28], &[1, 2, 3, 4, 5, 6]), 90);
    assert_eq!(check_grid(Arch::Compact, 2, [3, 32, 32], &[1, 2, 3, 4, 5, 6]), 90);
}

#[test]
fn resnet18_grid_restores_exact_shapes() {
    // 64×64 gives even sides (16, 8, 4, 2); 57×57 gives odd ones (15, 8, 4, 2 with rounding).
    assert_eq!(check_grid(Arch::ResNet18, 1, [3, 64, 64], &[1, 2, 3, 4, 5, 6, 7, 8]), 120);
    assert_eq!(check_grid(Arch::ResNet18, 1, [3, 57, 57], &[1, 2, 3, 4, 5, 6, 7, 8]), 120);
}

#[test]
fn resnet50_some_splits_restore_exact_shapes() {
    assert_eq!(check_grid(Arch::ResNet50, 1, [3, 64, 64], &[1, 4, 8, 14, 16]), 75);
}

#[test]
fn whole_model_runs_at_every_compact_split() {
    let device = device();
    let x = images([2, 1, 28, 28], 5, &device);
    for j in 1..=6 {
        let net = BottleNet::new(&BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(j, 2, 2), &device).unwrap();
        for mode in [CodecMode::None, CodecMode::Identity, CodecMode::Aware] {
            let out = net.forward_output(x.clone(), mode).unwrap();
            assert_eq!(out.logits.dims(), [2, 10]);
            assert_eq!(out.frame_bytes.is_some(), mode == CodecMode::Aware);
        }
        // Mode None is the unmodified backbone.
        let plain = net.forward(x.clone(), CodecMode::None).unwrap();
        assert_eq!(max_abs_diff(plain, net.backbone.forward(x.clone()).unwrap()), 0.0);
    }
}

#[test]
fn straight_through_backward_is_identity() {
    // y = x + (roundtrip(x) − x).detach(): value of the round trip, gradient of the identity.
    let device = device().autodiff();
    let x = images([2, 3, 5, 7], 9, &device).require_grad();
    let weights = images([2, 3, 5, 7], 10, &device);
    let (y, sizes) = codec_straight_through(x.clone(), &CodecParams::paper()).unwrap();
    assert_eq!(sizes.len(), 2);
    let (expected, _) = bottlenet_codec::roundtrip_batch(&values(x.clone().detach()), 2, bottlenet_codec::Shape::new(3, 5, 7), &CodecParams::paper()).unwrap();
    let got = values(y.clone().detach());
    let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-6, "forward value is the codec round trip (worst {worst})");
    let grads = (y * weights.clone()).sum().backward();
    let gx = x.grad(&grads).expect("gradient reaches x");
    assert!(max_abs_diff(gx, weights.inner()) < 1e-6);
}

#[test]
fn gradient_reaches_the_stem_through_the_codec() {
    let device = device().autodiff();
    device.seed(21);
    let config = BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(4, 2, 2);
    let net = BottleNet::new(&config, &device).unwrap();
    let x = images([8, 1, 28, 28], 22, &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3, 4, 5, 6, 7], [8]), &device);
    let out = net.forward_output(x, CodecMode::Aware).unwrap();
    assert!(out.frame_bytes.unwrap().iter().all(|&b| b > 0));
    let loss = CrossEntropyLossConfig::new().init(&device).forward(out.logits, targets);
    let grads = loss.backward();
    let stem_grad = net.backbone.conv1.weight.val().grad(&grads).expect("stem weight has a gradient");
    assert!(max_abs(stem_grad) > 0.0, "gradient through the Aware round trip is zero at the stem");
    let before = values(net.backbone.conv1.weight.val().inner());
    let params = GradientsParams::from_grads(grads, &net);
    let mut optim = AdamConfig::new().init();
    let net = optim.step(1e-2, net, params);
    let after = values(net.backbone.conv1.weight.val().inner());
    let moved = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(moved > 0.0, "one optimizer step leaves the stem unchanged");
}

fn check_halves_equal_aware_forward(config: BottleNetConfig, batch: usize) {
    let device = device();
    device.seed(31);
    let net = BottleNet::new(&config, &device).unwrap();
    let [c, h, w] = config.input_shape;
    let x = images([batch, c, h, w], 32, &device);
    let out = net.forward_output(x.clone(), CodecMode::Aware).unwrap();
    let scale = max_abs(out.logits.clone()).max(1.0);

    let frames = net.encode(x.clone()).unwrap();
    assert_eq!(frames.len(), batch);
    // The forward counts what the phone sends: version-2 frames, whose payload is these
    // self-describing version-1 frames' payload behind a shorter header (frame_v2.rs: 13 B and
    // the payload length in LEB128).
    let sent_len = |frame: &Vec<u8>| {
        let payload = bottlenet_codec::decode_header(frame).unwrap().payload_len;
        payload + 13 + (usize::BITS - payload.max(1).leading_zeros()).div_ceil(7) as usize
    };
    assert_eq!(out.frame_bytes.unwrap(), frames.iter().map(sent_len).collect::<Vec<_>>());
    let logits = net.decode(&frames).unwrap();
    let diff = max_abs_diff(logits, out.logits.clone());
    assert!(diff <= 1e-5 * scale, "encode→decode differs from Aware forward by {diff}");

    // The same through separately held halves.
    let mobile: MobileHalf = net.mobile_half().unwrap();
    let cloud: CloudHalf = net.cloud_half().unwrap();
    let frames2 = mobile.encode(x).unwrap();
    assert_eq!(frames2, frames, "phone half produces the same bytes");
    let diff = max_abs_diff(cloud.decode(&frames2).unwrap(), out.logits);
    assert!(diff <= 1e-5 * scale, "halves differ from Aware forward by {diff}");
}

#[test]
fn halves_equal_in_process_forward_compact() {
    check_halves_equal_aware_forward(BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(2, 4, 2), 4);
    check_halves_equal_aware_forward(BottleNetConfig::new(Arch::Compact, [3, 32, 32], 10).with_split(5, 1, 1), 3);
}

#[test]
fn halves_equal_in_process_forward_resnet18() {
    check_halves_equal_aware_forward(BottleNetConfig::new(Arch::ResNet18, [3, 64, 64], 10).with_split(3, 2, 2), 2);
}

#[test]
fn server_refuses_frames_of_another_shape() {
    let device = device();
    let a = BottleNet::new(&BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(2, 4, 2), &device).unwrap();
    let b = BottleNet::new(&BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(2, 2, 2), &device).unwrap();
    let frames = a.encode(images([1, 1, 28, 28], 1, &device)).unwrap();
    let err = b.decode(&frames).unwrap_err();
    assert!(err.to_string().contains("frame 0"), "{err}");
    let mut corrupt = frames[0].clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(a.decode(&[corrupt]).is_err());
    let empty: [Vec<u8>; 0] = [];
    assert!(a.decode(&empty).is_err());
    // Wrong image size is refused before burn sees it.
    assert!(a.forward(images([1, 1, 32, 32], 1, &device), CodecMode::Aware).is_err());
}

#[test]
fn configs_are_validated() {
    let device = device();
    let bad = [
        BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(7, 2, 2),
        BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(0, 2, 2),
        BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(2, 0, 2),
        BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(2, 2, 0),
        BottleNetConfig::new(Arch::Compact, [1, 28, 28], 0),
        BottleNetConfig::new(Arch::ResNet18, [3, 64, 64], 10).with_width(2),
    ];
    for config in bad {
        assert!(BottleNet::new(&config, &device).is_err(), "{config:?} accepted");
    }
    let json = serde_json::to_string(&BottleNetConfig::new(Arch::ResNet50, [3, 224, 224], 100).with_split(3, 1, 2)).unwrap();
    let back: BottleNetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.split, Some(3));
    assert!(serde_json::from_str::<BottleNetConfig>(&json.replace("\"s\":", "\"typo\":1,\"s\":")).is_err());
    let plain = BottleNet::new(&BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10), &device).unwrap();
    assert!(plain.bottleneck.is_none() && plain.num_params() > 0);
    assert!(plain.forward(images([1, 1, 28, 28], 1, &device), CodecMode::Aware).is_err());
    assert!(plain.encode(images([1, 1, 28, 28], 1, &device)).is_err());
}
