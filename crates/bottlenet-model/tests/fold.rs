//! BatchNorm folding: the folded inference copy computes the same function (within float
//! rounding) with no BN left to run, for basic and bottleneck blocks, both halves and the export.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

mod common;

use bottlenet_model::onnx::{export_cloud, export_mobile};
use bottlenet_model::{Arch, BottleNetConfig, CodecMode, FoldBatchNorm, Op, OpObserver};
use common::{images, max_abs, max_abs_diff, trained_like};
use std::collections::BTreeMap;

/// Counts operations by kind.
#[derive(Default)]
struct OpCounts(BTreeMap<String, usize>);

impl OpObserver for OpCounts {
    fn op<T>(&mut self, op: Op, run: impl FnOnce() -> T) -> T {
        *self.0.entry(op.to_string()).or_default() += 1;
        run()
    }
}

fn configs() -> Vec<BottleNetConfig> {
    vec![
        // Basic blocks, 1-channel input, bottleneck with the spatial (transposed) conv.
        BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(2, 4, 2),
        // Bottleneck blocks with downsample shortcuts, RGB, split after RB1 as in the paper.
        BottleNetConfig::new(Arch::ResNet50, [3, 32, 32], 10).with_split(1, 1, 2),
    ]
}

#[test]
fn folded_models_give_the_same_logits() {
    for (k, config) in configs().into_iter().enumerate() {
        let net = trained_like(&config, 70 + k as u64);
        let x = images([4, config.input_shape[0], config.input_shape[1], config.input_shape[2]], 90 + k as u64, &net.device());
        let expected = net.forward(x.clone(), CodecMode::Identity).unwrap();
        let folded = net.clone().fold_batch_norms();
        let got = folded.forward(x.clone(), CodecMode::Identity).unwrap();
        let tolerance = 1e-5 * max_abs(expected.clone()).max(1.0);
        let diff = max_abs_diff(expected.clone(), got);
        assert!(diff <= tolerance, "{}: folded logits differ by {diff} (tolerance {tolerance})", config.split_name());

        let (mobile, cloud) = (net.mobile_half().unwrap(), net.cloud_half().unwrap());
        let features = mobile.features(x.clone()).unwrap();
        let folded_mobile = mobile.fold_batch_norms();
        let folded_features = folded_mobile.features(x).unwrap();
        let diff = max_abs_diff(features.clone(), folded_features);
        assert!(diff <= 1e-5 * max_abs(features.clone()).max(1.0), "phone half's features differ by {diff}");
        let logits = cloud.logits(features.clone()).unwrap();
        let folded_cloud = cloud.fold_batch_norms();
        let diff = max_abs_diff(logits.clone(), folded_cloud.logits(features).unwrap());
        assert!(diff <= 1e-5 * max_abs(logits).max(1.0), "server half's logits differ by {diff}");
    }
}

#[test]
fn a_folded_half_runs_no_batch_norm_and_folding_twice_changes_nothing() {
    let config = configs().remove(1);
    let net = trained_like(&config, 80);
    let x = images([1, 3, 32, 32], 81, &net.device());
    let (mobile, cloud) = (net.mobile_half().unwrap(), net.cloud_half().unwrap());

    let mut before = OpCounts::default();
    let z = mobile.features_observed(x.clone(), &mut before).unwrap();
    cloud.logits_observed(z, &mut before).unwrap();
    // Stem + RB1 (4 BNs incl. downsample) + reduction (2) on the phone; restoration (2) + 15
    // bottleneck blocks (45) + 3 downsample BNs on the server.
    assert_eq!(before.0.get("batch-norm"), Some(&(1 + 4 + 2 + 2 + 45 + 3)), "{:?}", before.0);

    let (mobile, cloud) = (mobile.fold_batch_norms(), cloud.fold_batch_norms());
    let mut after = OpCounts::default();
    let once = mobile.features_observed(x.clone(), &mut after).unwrap();
    let logits_once = cloud.logits_observed(once.clone(), &mut after).unwrap();
    assert_eq!(after.0.get("batch-norm"), None, "{:?}", after.0);
    let convs = |c: &OpCounts| c.0.iter().filter(|(k, _)| k.starts_with("conv")).map(|(_, n)| n).sum::<usize>();
    assert_eq!(convs(&before), convs(&after), "folding must not add or drop a convolution");

    let (mobile, cloud) = (mobile.fold_batch_norms(), cloud.fold_batch_norms());
    let twice = mobile.features(x).unwrap();
    assert_eq!(max_abs_diff(once.clone(), twice), 0.0, "folding an already folded half must change nothing");
    assert_eq!(max_abs_diff(logits_once, cloud.logits(once).unwrap()), 0.0);
}

#[test]
fn a_folded_half_exports_without_batch_norm_nodes() {
    let config = configs().remove(0);
    let net = trained_like(&config, 60);
    let (mobile, cloud) = (net.mobile_half().unwrap(), net.cloud_half().unwrap());
    let plain = export_mobile(&mobile).unwrap();
    assert!(plain.op_types().contains(&"BatchNormalization"));
    let folded_mobile = export_mobile(&mobile.fold_batch_norms()).unwrap();
    let folded_cloud = export_cloud(&cloud.fold_batch_norms()).unwrap();
    for model in [&folded_mobile, &folded_cloud] {
        assert!(!model.op_types().contains(&"BatchNormalization"), "{:?}", model.op_types());
    }
    assert_eq!(plain.inputs(), folded_mobile.inputs());
    assert_eq!(plain.outputs(), folded_mobile.outputs());
}
