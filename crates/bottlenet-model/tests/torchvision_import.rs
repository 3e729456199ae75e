//! torchvision checkpoints load into our ResNets and reproduce PyTorch's logits.
//!
//! The fixtures are made by `scripts/torchvision_fixture.py` (a seeded, randomly initialised
//! torchvision ResNet with randomised BatchNorm statistics, one input and its logits): ResNet-18
//! at 1×3×64×64, ResNet-34/50/101 at the paper's 1×3×224×224. They go into temporary folders,
//! because the checkpoints are 45–170 MB. It needs Debian's
//! `python3-torchvision`; without it the test is skipped with a message — except under CI
//! (`CI` set), where a missing torch is a failure, so CI always runs it.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

mod common;

use bottlenet_model::{Arch, BackboneConfig, ImportOptions, ResNet, load_torchvision};
use burn::tensor::{Tensor, TensorData};
use common::{device, max_abs, max_abs_diff, values};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

#[derive(Deserialize)]
struct Golden {
    input_shape: Vec<usize>,
    input: Vec<f32>,
    logits_shape: Vec<usize>,
    logits: Vec<f32>,
}

fn python_with_torch() -> Option<String> {
    let candidates = std::env::var("BOTTLENET_PYTHON").into_iter().chain(["python3".to_string(), "/usr/bin/python3".to_string()]);
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import torch, torchvision"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// One fixture: a torchvision architecture and the input size its logits were computed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Fixture {
    arch: Arch,
    size: usize,
}

/// ResNet-18 at 64² is the quick one; the others run at the paper's 224² (ResNet-50 is the
/// paper's backbone, §3.1).
const RESNET18: Fixture = Fixture { arch: Arch::ResNet18, size: 64 };
const RESNET34: Fixture = Fixture { arch: Arch::ResNet34, size: 224 };
const RESNET50: Fixture = Fixture { arch: Arch::ResNet50, size: 224 };
const RESNET101: Fixture = Fixture { arch: Arch::ResNet101, size: 224 };

/// Generates a fixture's folder once per test binary; `None` when torch is unavailable outside CI.
fn fixture(which: Fixture) -> Option<PathBuf> {
    static DIRS: OnceLock<Mutex<HashMap<Fixture, Option<tempfile::TempDir>>>> = OnceLock::new();
    let mut dirs = DIRS.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    dirs.entry(which)
        .or_insert_with(|| {
            let Some(python) = python_with_torch() else {
                let message = "python3 with torch and torchvision not found (apt-get install python3-torchvision, \
                               or set BOTTLENET_PYTHON)";
                if std::env::var_os("CI").is_some() {
                    panic!("{message}: CI must install it so the torchvision import test runs");
                }
                eprintln!("SKIPPED torchvision import test: {message}");
                return None;
            };
            let dir = tempfile::tempdir().expect("temp dir");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/torchvision_fixture.py");
            let out = Command::new(&python)
                .arg(&script)
                .arg(dir.path())
                .args(["--arch", which.arch.name(), "--seed", "0", "--size", &which.size.to_string()])
                .output()
                .expect("run the fixture script");
            assert!(out.status.success(), "fixture script failed:\n{}", String::from_utf8_lossy(&out.stderr));
            Some(dir)
        })
        .as_ref()
        .map(|d| d.path().to_path_buf())
}

fn golden(dir: &Path, arch: Arch) -> Golden {
    let path = dir.join(format!("{}.json", arch.name()));
    serde_json::from_slice(&std::fs::read(path).expect("golden json")).expect("golden parses")
}

/// Loads `checkpoint` into our `arch` and compares its logits with PyTorch's, within 1e-4.
fn check_logits(arch: Arch, checkpoint: PathBuf, dir: &Path) {
    let device = device();
    let g = golden(dir, arch);
    let model = ResNet::new(&BackboneConfig::new(arch, 3, 1000), &device).unwrap();
    let model = load_torchvision(model, &checkpoint, ImportOptions::default()).unwrap();
    let shape: [usize; 4] = g.input_shape.clone().try_into().unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(g.input.clone(), shape), &device);
    let logits = model.forward(x).unwrap();
    assert_eq!(logits.dims().to_vec(), g.logits_shape);
    let expected = Tensor::<2>::from_data(TensorData::new(g.logits.clone(), [1, 1000]), &device);
    let diff = max_abs_diff(logits.clone(), expected.clone());
    eprintln!("{}: max |burn − torch| = {diff:e} (largest logit {:.3})", checkpoint.display(), max_abs(expected));
    assert!(diff < 1e-4, "{}: logits differ from PyTorch by {diff}", checkpoint.display());
    // Random-weight logits are far from trivially small, so the tolerance means something.
    assert!(values(logits).iter().any(|v| v.abs() > 0.1));
}

fn check_fixture(which: Fixture, extension: &str) {
    let Some(dir) = fixture(which) else { return };
    check_logits(which.arch, dir.join(format!("{}.{extension}", which.arch.name())), &dir);
}

#[test]
fn pth_reproduces_pytorch_logits() {
    check_fixture(RESNET18, "pth");
}

#[test]
fn safetensors_reproduces_pytorch_logits() {
    check_fixture(RESNET18, "safetensors");
}

#[test]
fn resnet34_at_224_reproduces_pytorch_logits() {
    check_fixture(RESNET34, "pth");
}

#[test]
fn resnet50_at_224_reproduces_pytorch_logits() {
    check_fixture(RESNET50, "pth");
    check_fixture(RESNET50, "safetensors");
}

#[test]
fn resnet101_at_224_reproduces_pytorch_logits() {
    check_fixture(RESNET101, "pth");
}

#[test]
fn mismatched_checkpoints_list_the_keys() {
    let Some(dir) = fixture(RESNET18) else { return };
    let device = device();
    let pth = dir.join("resnet18.pth");

    // resnet34 has more blocks: the checkpoint lacks layer1.2 and others.
    let r34 = ResNet::new(&BackboneConfig::new(Arch::ResNet34, 3, 1000), &device).unwrap();
    let err = load_torchvision(r34, &pth, ImportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("missing from checkpoint: layer1.2.conv1.weight"), "{err}");

    // resnet50 has other shapes and other keys.
    let r50 = ResNet::new(&BackboneConfig::new(Arch::ResNet50, 3, 1000), &device).unwrap();
    let err = load_torchvision(r50, &dir.join("resnet18.safetensors"), ImportOptions::default()).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("mismatched") && err.contains("layer1.0.conv1.weight"), "{err}");
    assert!(err.contains("missing from checkpoint: layer1.0.conv3.weight"), "{err}");

    // Other class count: fc does not fit ...
    let r18_10 = || ResNet::new(&BackboneConfig::new(Arch::ResNet18, 3, 10), &device).unwrap();
    let err = load_torchvision(r18_10(), &pth, ImportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("fc.weight"), "{err}");
    // ... unless fc is left out, as when fine-tuning a pretrained backbone.
    let model = load_torchvision(r18_10(), &pth, ImportOptions { include_fc: false }).unwrap();
    assert_eq!(model.config().num_classes, 10);

    let err = load_torchvision(r18_10(), &dir.join("nope.pth"), ImportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("nope.pth"), "{err}");
}
