//! head(x, j) followed by tail(·, j) is the whole network at every split point, and the phone /
//! server parts of a backbone compute the same as the backbone itself.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

mod common;

use bottlenet_model::{Arch, BackboneConfig, ResNet};
use common::{device, images, max_abs, max_abs_diff};

fn check_every_split(config: BackboneConfig, input: [usize; 3], batch: usize) {
    let device = device();
    device.seed(7);
    let net = ResNet::new(&config, &device).unwrap();
    let x = images([batch, input[0], input[1], input[2]], 11, &device);
    let full = net.forward(x.clone()).unwrap();
    let scale = max_abs(full.clone()).max(1.0);
    let points = net.split_points(input);
    assert_eq!(points.len(), config.num_blocks());
    for j in 0..=net.num_blocks() {
        let z = net.head(x.clone(), j).unwrap();
        if j > 0 {
            let p = &points[j - 1];
            assert_eq!(p.name, format!("RB{j}"));
            assert_eq!(z.dims()[1..], p.shape, "{} {}: analytic shape", config.arch, p.name);
        }
        let logits = net.tail(z, j).unwrap();
        let diff = max_abs_diff(logits, full.clone());
        assert!(diff <= 1e-5 * scale, "{} split {j}: head∘tail differs by {diff} (scale {scale})", config.arch);
    }
    // The deployable parts hold only their side's weights and agree with head / tail.
    for j in [1, net.num_blocks() / 2, net.num_blocks()] {
        let head = net.head_part(j).unwrap();
        let tail = net.tail_part(j).unwrap();
        let z = head.forward(x.clone()).unwrap();
        assert!(max_abs_diff(z.clone(), net.head(x.clone(), j).unwrap()) == 0.0);
        let diff = max_abs_diff(tail.forward(z).unwrap(), full.clone());
        assert!(diff <= 1e-5 * scale, "{} parts at {j}: {diff}", config.arch);
    }
    assert!(net.head(x.clone(), net.num_blocks() + 1).is_err());
    assert!(net.tail(x, net.num_blocks() + 1).is_err());
}

#[test]
fn resnet18_head_tail_equals_forward() {
    check_every_split(BackboneConfig::new(Arch::ResNet18, 3, 10), [3, 64, 64], 2);
}

#[test]
fn resnet50_head_tail_equals_forward() {
    check_every_split(BackboneConfig::new(Arch::ResNet50, 3, 10), [3, 64, 64], 1);
}

#[test]
fn compact_head_tail_equals_forward() {
    check_every_split(BackboneConfig::new(Arch::Compact, 1, 10), [1, 28, 28], 4);
    check_every_split(BackboneConfig::new(Arch::Compact, 3, 10).with_width(2), [3, 32, 32], 2);
}

#[test]
fn resnet50_split_point_names_follow_the_paper() {
    let device = device();
    let net = ResNet::new(&BackboneConfig::new(Arch::ResNet50, 3, 100), &device).unwrap();
    let points = net.split_points([3, 224, 224]);
    let modules: Vec<&str> = points.iter().map(|p| p.module.as_str()).collect();
    assert_eq!(
        modules,
        [
            "layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2", "layer2.3", "layer3.0", "layer3.1",
            "layer3.2", "layer3.3", "layer3.4", "layer3.5", "layer4.0", "layer4.1", "layer4.2"
        ]
    );
    assert_eq!(points[0].shape, [256, 56, 56]);
    assert_eq!(points[15].shape, [2048, 7, 7]);
}

#[test]
fn wrong_input_channels_is_an_error_not_a_panic() {
    let device = device();
    let net = ResNet::new(&BackboneConfig::new(Arch::Compact, 1, 10), &device).unwrap();
    let err = net.forward(images([1, 3, 28, 28], 1, &device)).unwrap_err();
    assert!(err.to_string().contains("shape mismatch"), "{err}");
    let err = net.tail(images([1, 5, 28, 28], 1, &device), 2).unwrap_err();
    assert!(err.to_string().contains("RB2"), "{err}");
}
