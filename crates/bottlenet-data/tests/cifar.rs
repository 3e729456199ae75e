//! CIFAR-10 binary batches from tiny generated files.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

mod common;

use bottlenet_data::{Augment, DatasetFormat, Error, FolderOptions, load_cifar10_dir, open};
use common::{cifar_record, write_cifar_dir};

#[test]
fn cifar_dir_loads_all_batches_as_hwc() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar_dir(dir.path(), 3);
    let pair = load_cifar10_dir(dir.path()).unwrap();
    assert_eq!(pair.train.len(), 15);
    assert_eq!(pair.test.len(), 3);
    assert_eq!(pair.train.input_shape(), [3, 32, 32]);
    assert_eq!(pair.train.class_names()[0], "airplane");
    // Training sample 4 is record 1 of data_batch_2: label 1, seed 101.
    let raw = pair.train.raw(4, Augment::Eval).unwrap();
    assert_eq!(raw.label, 1);
    let record = cifar_record(1, 101);
    for p in [0, 1, 500, 1023] {
        for c in 0..3 {
            assert_eq!(raw.image.pixels[p * 3 + c], record[1 + c * 1024 + p]);
        }
    }
    // `get` is CHW again, normalised per channel.
    let s = pair.train.get(4, Augment::Eval).unwrap();
    let n = pair.train.normalization();
    for c in 0..3 {
        let want = (f32::from(record[1 + c * 1024 + 7]) / 255.0 - n.mean()[c]) / n.std()[c];
        assert!((s.pixels[c * 1024 + 7] - want).abs() < 1e-5);
    }
    // Training reads are augmented (pad-4 crop, flip), deterministically.
    let t = |epoch| {
        pair.train
            .raw(4, Augment::Train { seed: 1, epoch })
            .unwrap()
            .image
    };
    assert_eq!(t(0), t(0));
    assert!((0..6).any(|e| t(e).pixels != raw.image.pixels));
}

#[test]
fn cifar_meta_file_names_classes_and_nested_dir_is_found() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    write_cifar_dir(&dir, 2);
    let names: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    std::fs::write(dir.join("batches.meta.txt"), names.join("\n") + "\n\n").unwrap();
    let (pair, format) = open(root.path(), &FolderOptions::default()).unwrap();
    assert_eq!(format, DatasetFormat::Cifar10);
    assert_eq!(pair.test.class_names(), names);
}

#[test]
fn truncated_or_mislabelled_batches_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar_dir(dir.path(), 2);
    let path = dir.path().join("data_batch_3.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let e = load_cifar10_dir(dir.path()).unwrap_err();
    assert!(matches!(e, Error::Format { .. }));
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");

    write_cifar_dir(dir.path(), 2);
    let path = dir.path().join("test_batch.bin");
    std::fs::write(&path, cifar_record(10, 0)).unwrap();
    let e = load_cifar10_dir(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("test_batch.bin") && e.contains("label 10"),
        "{e}"
    );

    std::fs::remove_file(dir.path().join("data_batch_5.bin")).unwrap();
    let e = load_cifar10_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("data_batch_5.bin"), "{e}");
}
