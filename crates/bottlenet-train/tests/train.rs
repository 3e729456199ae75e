//! Training-loop tests: the paper's own network trains through the same code path, a killed run
//! resumes exactly, and checkpoints are replaced atomically.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use bottlenet_data::{DatasetPair, FolderOptions, MemoryDataset, Normalization, load_image_folder};
use bottlenet_model::{Arch, BottleNet, BottleNetConfig, CodecMode};
use bottlenet_train::evaluate::batch_tensors;
use bottlenet_train::trainer::{optimisation_step, optimizer};
use bottlenet_train::{ExperimentConfig, RunOptions, load_trained, train};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Tensor, TensorData};
use std::path::Path;
use std::sync::Arc;

/// burn's random generator is global to the backend: tests that compare two seeded runs must not
/// draw from it concurrently with other tests.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn experiment(extra: &str) -> ExperimentConfig {
    let text = format!(
        r#"
name = "tiny"
[model]
arch = "compact"
[train]
mode = "baseline"
epochs = 2
batch_size = 16
optimizer = "sgd"
lr = 0.05
seed = 7
steps_per_epoch = 3
{extra}
"#
    );
    ExperimentConfig::parse(&text, Path::new("tiny.toml"), &[]).expect("config")
}

/// 96 train / 32 test noisy images of 10 "classes" (class = mean brightness band).
fn tiny_data() -> DatasetPair {
    let make = |n: usize, offset: usize| {
        let mut images = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = ((i + offset) % 10) as u32;
            labels.push(label);
            images.extend((0..784).map(|p| ((label as usize * 25 + (p * 7 + i * 13) % 23) % 256) as u8));
        }
        (images, labels)
    };
    let names: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
    let norm = Normalization::fashion_mnist();
    let (ti, tl) = make(96, 0);
    let (vi, vl) = make(32, 3);
    DatasetPair {
        train: Arc::new(MemoryDataset::new("tiny/train", [1, 28, 28], ti, tl, names.clone(), norm.clone()).expect("train")),
        test: Arc::new(MemoryDataset::new("tiny/test", [1, 28, 28], vi, vl, names, norm).expect("test")),
        warnings: Vec::new(),
    }
}

fn logits_of(dir: &Path) -> Vec<f32> {
    let device = Device::flex();
    let model = load_trained(dir, &device).expect("load");
    let x = Tensor::<4>::from_data(TensorData::new((0..2 * 784).map(|i| (i % 29) as f32 / 29.0).collect::<Vec<f32>>(), [2, 1, 28, 28]), &device);
    model.forward(x, CodecMode::None).expect("forward").into_data().convert::<f32>().try_into_vec::<f32>().expect("vec")
}

#[test]
fn a_killed_run_resumes_exactly() {
    let _serial = serial();
    let data = tiny_data();
    let quiet = RunOptions { quiet: true, ..RunOptions::default() };
    let straight = tempfile::tempdir().expect("tmp");
    let full = train(&experiment(""), &data, straight.path(), &quiet).expect("train 2 epochs");

    // The "killed" run: stopped after epoch 1 (its checkpoint is all that survives) ...
    let resumed = tempfile::tempdir().expect("tmp");
    let stop = RunOptions { quiet: true, stop_after_epochs: Some(1), ..RunOptions::default() };
    let err = train(&experiment(""), &data, resumed.path(), &stop).unwrap_err();
    assert!(matches!(err, bottlenet_train::Error::Interrupted { epochs_done: 1 }), "{err}");
    assert!(!resumed.path().join("model.bpk").exists());
    // ... then resumed.
    let again = train(&experiment(""), &data, resumed.path(), &RunOptions { resume: true, quiet: true, ..RunOptions::default() }).expect("resume");

    assert_eq!(again.history.len(), 2);
    for (a, b) in full.history.iter().zip(&again.history) {
        assert!((a.loss - b.loss).abs() < 1e-5, "epoch {}: {} vs {}", a.epoch, a.loss, b.loss);
    }
    // Regression: the checkpoint once lost BatchNorm's running statistics (saved from the
    // autodiff copy), so weights matched but evaluation did not.
    let checkpoint_state = bottlenet_train::checkpoint::latest(resumed.path()).expect("state").expect("a checkpoint").1;
    assert_eq!(checkpoint_state.epochs_done, 2);
    for (a, b) in logits_of(straight.path()).iter().zip(logits_of(resumed.path())) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // One checkpoint left, and LATEST names it.
    let checkpoints = resumed.path().join("checkpoints");
    let latest = std::fs::read_to_string(checkpoints.join("LATEST")).expect("LATEST");
    let dirs: Vec<_> = std::fs::read_dir(&checkpoints).expect("ls").flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name()).collect();
    assert_eq!(dirs, vec![std::ffi::OsString::from(latest.trim())]);
}

#[test]
fn resume_refuses_another_experiment() {
    let _serial = serial();
    let data = tiny_data();
    let out = tempfile::tempdir().expect("tmp");
    train(&experiment("").with_epochs(1), &data, out.path(), &RunOptions { quiet: true, ..RunOptions::default() }).expect("train");
    let other = ExperimentConfig::parse(&experiment("").to_toml(), Path::new("x.toml"), &["train.lr=0.5".into()]).expect("cfg");
    let err = train(&other, &data, out.path(), &RunOptions { resume: true, quiet: true, ..RunOptions::default() }).unwrap_err();
    assert!(err.to_string().contains("different experiment"), "{err}");
}

#[test]
fn aware_training_writes_a_bundle_with_real_bytes() {
    let _serial = serial();
    let data = tiny_data();
    let out = tempfile::tempdir().expect("tmp");
    let config = ExperimentConfig::parse(
        &experiment("").to_toml(),
        Path::new("a.toml"),
        &["train.mode=\"aware\"".into(), "model.split=1".into(), "model.s=2".into(), "train.epochs=1".into()],
    )
    .expect("cfg");
    let result = train(&config, &data, out.path(), &RunOptions { quiet: true, ..RunOptions::default() }).expect("train");
    assert_eq!(result.eval.codec, "jpeg-abbrev");
    assert_eq!(result.eval.images, 32);
    assert!(result.eval.mean_bytes > bottlenet_codec::HEADER_LEN as f64, "{}", result.eval.mean_bytes);
    let manifest = bottlenet_model::Bundle::read_manifest(&out.path().join("bundle")).expect("manifest");
    assert_eq!(manifest.splits[0].mean_bytes, Some(result.eval.mean_bytes));
}

/// Two optimizer steps of the paper's network (ResNet-50, bottleneck after RB1, real codec in
/// the loop) on a tiny generated image folder at 32×32: the loss is finite and the stem moved.
#[test]
fn resnet50_with_bottleneck_after_rb1_trains_on_an_image_folder() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tmp");
    for (class, base) in [("cat", 40u8), ("dog", 200u8)] {
        let dir = root.path().join(class);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..6u32 {
            let img = image::RgbImage::from_fn(40, 36, |x, y| image::Rgb([base.wrapping_add((x * 3 + y + i) as u8), base, (x * y) as u8]));
            img.save(dir.join(format!("{i}.png"))).expect("png");
        }
    }
    let options = FolderOptions { resize: 36, crop: 32, ..FolderOptions::default() };
    let data = load_image_folder(root.path(), &options).expect("folder");
    assert_eq!(data.train.input_shape(), [3, 32, 32]);

    let device = Device::flex().autodiff();
    let config = BottleNetConfig::new(Arch::ResNet50, [3, 32, 32], 2).with_split(1, 1, 2);
    let mut model = BottleNet::new(&config, &device).expect("model");
    let before = model.backbone.conv1.weight.val().into_data().convert::<f32>().try_into_vec::<f32>().expect("w");
    let experiment = ExperimentConfig::parse(&experiment("").to_toml(), Path::new("r.toml"), &[]).expect("cfg");
    let mut optim = optimizer(&experiment);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let batcher = bottlenet_data::Batcher::new(data.train.clone(), bottlenet_data::BatchOptions::train(4, 1)).expect("batcher");
    for batch in batcher.epoch(0).take(2) {
        let batch = batch.expect("batch");
        let (images, targets) = batch_tensors(batch.pixels, &batch.labels, batch.shape, &device);
        let outcome;
        (model, outcome) = optimisation_step(model, &mut optim, &loss_fn, images, targets, &batch.labels, CodecMode::Aware, 0.05).expect("step");
        assert!(outcome.loss.is_finite(), "loss {}", outcome.loss);
    }
    let after = model.backbone.conv1.weight.val().into_data().convert::<f32>().try_into_vec::<f32>().expect("w");
    let moved = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 0.0, "the stem did not move");
}


/// Regression (issue 12): `train --out` on a folder holding a run deleted its checkpoints.
#[test]
fn a_new_run_refuses_a_folder_that_holds_one() {
    let _serial = serial();
    let data = tiny_data();
    let out = tempfile::tempdir().expect("tmp");
    let quiet = RunOptions { quiet: true, ..RunOptions::default() };
    let stop = RunOptions { stop_after_epochs: Some(1), ..quiet.clone() };
    train(&experiment(""), &data, out.path(), &stop).unwrap_err();
    let checkpoint = bottlenet_train::checkpoint::latest(out.path()).expect("state").expect("a checkpoint").0;

    let err = train(&experiment(""), &data, out.path(), &quiet).unwrap_err().to_string();
    assert!(err.contains("already holds a training run") && err.contains("--resume") && err.contains("--out"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(checkpoint.join("model.bpk").is_file(), "the refused run touched the checkpoint");
}

/// `config.toml` is the run's own: a resume refused for another configuration leaves it as it was.
#[test]
fn a_refused_resume_keeps_the_runs_config() {
    let _serial = serial();
    let data = tiny_data();
    let out = tempfile::tempdir().expect("tmp");
    train(&experiment("").with_epochs(1), &data, out.path(), &RunOptions { quiet: true, ..RunOptions::default() }).expect("train");
    let written = std::fs::read_to_string(out.path().join("config.toml")).expect("config.toml");
    let other = ExperimentConfig::parse(&experiment("").to_toml(), Path::new("x.toml"), &["train.lr=0.5".into()]).expect("cfg");
    train(&other, &data, out.path(), &RunOptions { resume: true, quiet: true, ..RunOptions::default() }).unwrap_err();
    assert_eq!(std::fs::read_to_string(out.path().join("config.toml")).expect("config.toml"), written);
}

/// Fine-tuning a 1000-class torchvision checkpoint on 10 classes starts `fc` afresh and says so
/// in one line; the backbone's weights are the checkpoint's.
#[test]
fn an_imagenet_checkpoint_fine_tunes_with_a_fresh_fc_and_a_note() {
    use bottlenet_model::{BackboneConfig, ResNet};
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
    let _serial = serial();
    let data = tiny_data();
    let dir = tempfile::tempdir().expect("tmp");
    // A torchvision-layout checkpoint written here: our ResNet-18 has torchvision's keys, and the
    // adapter gives BatchNorm and fc PyTorch's names and layout.
    let checkpoint = dir.path().join("imagenet.safetensors");
    let imagenet = ResNet::new(&BackboneConfig::new(Arch::ResNet18, 1, 1000), &Device::flex()).expect("resnet18");
    let mut store = SafetensorsStore::from_file(&checkpoint).with_to_adapter(BurnToPyTorchAdapter).skip_enum_variants(true);
    imagenet.save_into(&mut store).expect("save checkpoint");
    assert_eq!(bottlenet_model::checkpoint_classes(&checkpoint).expect("index"), Some(1000));

    let config = ExperimentConfig::parse(
        &experiment("").to_toml(),
        Path::new("ft.toml"),
        &["model.arch=\"resnet18\"".into(), "train.epochs=1".into(), "train.steps_per_epoch=1".into(), format!("train.init=\"{}\"", checkpoint.display())],
    )
    .expect("cfg");
    let out = dir.path().join("run");
    let result = train(&config, &data, &out, &RunOptions { quiet: true, ..RunOptions::default() }).expect("fine-tune");
    assert_eq!(result.notes.len(), 1, "{:?}", result.notes);
    let note = &result.notes[0];
    assert!(note.contains("fc re-initialised for 10 classes") && note.contains("1000-class fc"), "{note}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json")).expect("json");
    assert_eq!(saved["notes"][0].as_str(), Some(note.as_str()));
}
