//! Helpers shared by the integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use bottlenet_model::{BottleNet, BottleNetConfig, CodecMode};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

pub fn device() -> Device {
    Device::flex()
}

/// Seeded uniform [0, 1) images.
pub fn images(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    device.seed(seed);
    Tensor::<4>::random(shape, Distribution::Uniform(0.0, 1.0), device)
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 data")
}

pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Largest absolute value, to size relative tolerances.
pub fn max_abs<const D: usize>(t: Tensor<D>) -> f32 {
    values(t).iter().map(|v| v.abs()).fold(0.0, f32::max)
}

/// A model whose BN running statistics moved away from 0/1 (one training-mode pass), in
/// inference mode.
pub fn trained_like(config: &BottleNetConfig, seed: u64) -> BottleNet {
    let ad = device().autodiff();
    ad.seed(seed);
    let net = BottleNet::new(config, &ad).unwrap();
    let [c, h, w] = config.input_shape;
    let x = images([8, c, h, w], seed + 1, &ad);
    let _ = net.forward(x, CodecMode::Identity).unwrap();
    let net = net.valid();
    // Tests built on this would not notice unused running statistics if they were still 0 / 1.
    assert!(max_abs(net.backbone.bn1.running_mean.value()) > 0.0);
    net
}
