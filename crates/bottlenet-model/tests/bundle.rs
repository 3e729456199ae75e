//! A bundle saved and loaded back gives identical logits through its phone and server halves; a
//! bundle whose manifest disagrees with its weights is refused.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

mod common;

use bottlenet_model::{Arch, BottleNet, BottleNetConfig, Bundle, CodecMode, Normalization, SplitStats, MANIFEST_FILE};
use common::{device, images, max_abs, max_abs_diff, trained_like};
use std::fs;
use std::path::Path;

fn build_bundle(dir: &Path) -> (Vec<BottleNet>, Bundle) {
    let base = BottleNetConfig::new(Arch::Compact, [1, 28, 28], 3);
    let nets = vec![trained_like(&base.clone().with_split(2, 4, 2), 40), trained_like(&base.with_split(5, 2, 1), 50)];
    let mut bundle = Bundle::new(Arch::Compact, 1, [1, 28, 28], 3, Normalization::identity(1), vec!["a".into(), "b".into(), "c".into()]).unwrap();
    bundle.add(&nets[0], SplitStats { accuracy: Some(0.9), mean_bytes: Some(140.5) }).unwrap();
    bundle.add(&nets[1], SplitStats::default()).unwrap();
    bundle.save(dir).unwrap();
    (nets, bundle)
}

#[test]
fn save_load_gives_identical_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let (nets, _) = build_bundle(&dir);
    assert!(dir.join(MANIFEST_FILE).is_file());
    assert!(dir.join("mobile/RB2.bpk").is_file() && dir.join("cloud/RB5.bpk").is_file());

    let device = device();
    let mobile = Bundle::load_mobile(&dir, &device).unwrap();
    let cloud = Bundle::load_cloud(&dir, &device).unwrap();
    assert_eq!(mobile.splits().collect::<Vec<_>>(), [2, 5]);
    assert_eq!(mobile.manifest.entry(2).unwrap().accuracy, Some(0.9));
    assert_eq!(mobile.manifest.entry(5).unwrap().mean_bytes, None);
    assert_eq!(mobile.manifest.class_names, ["a", "b", "c"]);

    let x = images([3, 1, 28, 28], 60, &device);
    for net in &nets {
        let j = net.config().split.unwrap();
        let expected = net.forward(x.clone(), CodecMode::Aware).unwrap();
        let frames = mobile.half(j).unwrap().encode(x.clone()).unwrap();
        assert_eq!(frames, net.encode(x.clone()).unwrap(), "RB{j}: loaded phone half gives other bytes");
        let logits = cloud.half(j).unwrap().decode(&frames).unwrap();
        let diff = max_abs_diff(logits, expected.clone());
        assert!(diff <= 1e-6 * max_abs(expected).max(1.0), "RB{j}: logits differ by {diff}");
    }

    // Loading both halves and saving again reproduces the manifest; the old folder is replaced.
    let both = Bundle::load(&dir, &device).unwrap();
    both.save(&dir).unwrap();
    assert_eq!(Bundle::read_manifest(&dir).unwrap(), mobile.manifest);
    let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["bundle"], "atomic save leaves no temporary folders");
}

/// Copies the bundle, edits its manifest JSON, and expects both loaders to refuse it.
fn refused_after(dir: &Path, edit: impl Fn(&mut serde_json::Value)) -> String {
    let tampered = dir.with_file_name("tampered");
    let _ = fs::remove_dir_all(&tampered);
    fs::create_dir_all(tampered.join("mobile")).unwrap();
    fs::create_dir_all(tampered.join("cloud")).unwrap();
    for sub in ["mobile", "cloud"] {
        for f in fs::read_dir(dir.join(sub)).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), tampered.join(sub).join(f.file_name())).unwrap();
        }
    }
    let mut manifest: serde_json::Value = serde_json::from_slice(&fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    edit(&mut manifest);
    fs::write(tampered.join(MANIFEST_FILE), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let device = device();
    let cloud_err = Bundle::load_cloud(&tampered, &device).err().map(|e| e.to_string());
    let mobile_err = Bundle::load_mobile(&tampered, &device).err().map(|e| e.to_string());
    assert!(mobile_err.is_some() || cloud_err.is_some(), "tampered bundle was accepted");
    mobile_err.or(cloud_err).unwrap()
}

#[test]
fn tampered_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    build_bundle(&dir);

    // c' changed: the weights hold 4 reduced channels, the manifest claims 8.
    let err = refused_after(&dir, |m| m["splits"][0]["c_prime"] = 8.into());
    assert!(err.contains("RB2") && err.contains("parameters"), "{err}");
    // Parameter count edited to agree with nothing.
    let err = refused_after(&dir, |m| m["splits"][1]["mobile"]["num_params"] = 12345.into());
    assert!(err.contains("12345"), "{err}");
    // Same parameter count, other shapes: swap the two splits' weight files.
    let err = refused_after(&dir, |m| {
        let a = m["splits"][0]["mobile"].clone();
        m["splits"][0]["mobile"] = m["splits"][1]["mobile"].clone();
        m["splits"][1]["mobile"] = a;
    });
    assert!(err.contains("RB"), "{err}");
    // Another architecture, another class count, unknown fields, escaping paths.
    refused_after(&dir, |m| m["arch"] = "resnet18".into());
    refused_after(&dir, |m| m["num_classes"] = 4.into());
    refused_after(&dir, |m| m["splits"][0]["extra"] = 1.into());
    let err = refused_after(&dir, |m| m["splits"][0]["mobile"]["file"] = "../bundle/mobile/RB2.bpk".into());
    assert!(err.contains("relative"), "{err}");
    let err = refused_after(&dir, |m| m["splits"][0]["name"] = "RB3".into());
    assert!(err.contains("RB3"), "{err}");
}

#[test]
fn truncated_weights_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    build_bundle(&dir);
    let file = dir.join("cloud/RB5.bpk");
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    assert!(Bundle::load_mobile(&dir, &device()).is_ok(), "the phone never reads cloud files");
    let err = Bundle::load_cloud(&dir, &device()).unwrap_err().to_string();
    assert!(err.contains("cloud/RB5.bpk"), "{err}");
}

#[test]
fn bundle_refuses_models_of_another_shape() {
    let device = device();
    let mut bundle = Bundle::new(Arch::Compact, 1, [1, 28, 28], 3, Normalization::identity(1), vec![]).unwrap();
    let other = BottleNet::new(&BottleNetConfig::new(Arch::Compact, [1, 32, 32], 3).with_split(1, 1, 1), &device).unwrap();
    assert!(bundle.add(&other, SplitStats::default()).is_err());
    let plain = BottleNet::new(&BottleNetConfig::new(Arch::Compact, [1, 28, 28], 3), &device).unwrap();
    assert!(bundle.add(&plain, SplitStats::default()).is_err());
    assert!(Bundle::new(Arch::Compact, 1, [1, 28, 28], 3, Normalization::identity(3), vec![]).is_err());
    assert!(Bundle::new(Arch::Compact, 1, [1, 28, 28], 3, Normalization::identity(1), vec!["x".into()]).is_err());
}

#[test]
fn normalization_applies_per_channel() {
    let device = device();
    let x = images([2, 3, 4, 4], 1, &device);
    let n = Normalization::imagenet();
    let y = n.apply(x.clone()).unwrap();
    let manual = (x.clone().slice([0..2, 1..2, 0..4, 0..4]) - 0.456) / 0.224;
    assert!(max_abs_diff(y.slice([0..2, 1..2, 0..4, 0..4]), manual) < 1e-6);
    assert!(n.apply(images([1, 1, 4, 4], 1, &device)).is_err());
}

#[test]
fn full_network_round_trips_and_must_have_no_split() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let (_, mut bundle) = build_bundle(&dir);
    assert_eq!(Bundle::load_full(&dir, &device()).unwrap().map(|_| ()), None, "a splits-only bundle has no full network");

    let base = BottleNetConfig::new(Arch::Compact, [1, 28, 28], 3);
    let split_net = trained_like(&base.clone().with_split(2, 4, 2), 70);
    assert!(bundle.set_full(&split_net, None).unwrap_err().to_string().contains("no split"));
    let other_classes = trained_like(&BottleNetConfig::new(Arch::Compact, [1, 28, 28], 4), 71);
    assert!(bundle.set_full(&other_classes, None).is_err());

    let baseline = trained_like(&base, 72);
    bundle.set_full(&baseline, Some(0.93)).unwrap();
    bundle.save(&dir).unwrap();
    let manifest = Bundle::read_manifest(&dir).unwrap();
    assert_eq!(manifest.full.as_ref().unwrap().accuracy, Some(0.93));
    let loaded = Bundle::load_full(&dir, &device()).unwrap().unwrap();
    let x = images([3, 1, 28, 28], 73, &device());
    let expected = baseline.forward(x.clone(), CodecMode::None).unwrap();
    let diff = max_abs_diff(loaded.forward(x, CodecMode::None).unwrap(), expected.clone());
    assert!(diff <= 1e-6 * max_abs(expected).max(1.0), "full network logits differ by {diff}");
    // Loading everything and saving again keeps the full network.
    Bundle::load(&dir, &device()).unwrap().save(&dir).unwrap();
    assert_eq!(Bundle::read_manifest(&dir).unwrap(), manifest);

    // A manifest whose parameter count lies is refused.
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    json["full"]["num_params"] = serde_json::json!(12);
    fs::write(dir.join(MANIFEST_FILE), serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(Bundle::load_full(&dir, &device()).unwrap_err().to_string().contains("parameters"));
}
