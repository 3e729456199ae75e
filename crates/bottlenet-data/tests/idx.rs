//! IDX (MNIST / Fashion-MNIST) files: round trips through generated files, and errors that name
//! the bad file.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

mod common;

use std::path::Path;

use bottlenet_data::{Augment, Error, load_idx_dir, read_idx, write_idx};
use common::{idx_fixture, write_idx_dir};

#[test]
fn idx_round_trip_gzip_and_raw() {
    for gzip in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-idx3-ubyte");
        let (images, _) = idx_fixture(5, 4, 3, 10);
        write_idx(&path, &[5, 4, 3], &images, gzip).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), gzip);
        let back = read_idx(&path).unwrap();
        assert_eq!(back.dims, vec![5, 4, 3]);
        assert_eq!(back.data, images);
    }
}

#[test]
fn idx_dir_loads_gz_and_raw_alike() {
    let (gz, raw) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_idx_dir(gz.path(), 12, 5, true);
    write_idx_dir(raw.path(), 12, 5, false);
    let a = load_idx_dir(gz.path()).unwrap();
    let b = load_idx_dir(raw.path()).unwrap();
    assert!(a.warnings.is_empty());
    assert_eq!(a.train.len(), 12);
    assert_eq!(a.test.len(), 5);
    assert_eq!(a.train.input_shape(), [1, 4, 3]);
    // Neither path mentions (fashion-)mnist: classes are numbered from the labels (0..=9).
    assert_eq!(a.train.num_classes(), 10);
    assert_eq!(a.train.class_names()[3], "3");
    let (images, labels) = idx_fixture(12, 4, 3, 10);
    for i in 0..12 {
        let ra = a.train.raw(i, Augment::Eval).unwrap();
        let rb = b.train.raw(i, Augment::Eval).unwrap();
        assert_eq!(ra, rb);
        assert_eq!(ra.image.pixels, images[i * 12..(i + 1) * 12]);
        assert_eq!(ra.label, u32::from(labels[i]));
        assert_eq!(a.train.label(i).unwrap(), ra.label);
        // `get` is the raw image scaled to [0,1] and normalised with the dataset's statistics.
        let s = a.train.get(i, Augment::Eval).unwrap();
        let n = a.train.normalization();
        for (v, &p) in s.pixels.iter().zip(&ra.image.pixels) {
            let want = (f32::from(p) / 255.0 - n.mean()[0]) / n.std()[0];
            assert!((v - want).abs() < 1e-5);
        }
    }
}

#[test]
fn fashion_dirs_get_fashion_names_and_statistics() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("my-fashion-mnist");
    std::fs::create_dir(&dir).unwrap();
    write_idx_dir(&dir, 10, 10, true);
    let pair = load_idx_dir(&dir).unwrap();
    assert_eq!(pair.train.class_names()[9], "Ankle boot");
    assert!((pair.train.normalization().mean()[0] - 0.2860).abs() < 1e-6);
    assert!((pair.train.normalization().std()[0] - 0.3530).abs() < 1e-6);
}

#[test]
fn classes_txt_names_the_classes_and_bounds_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), 10, 10, false);
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    std::fs::write(dir.path().join("classes.txt"), names.join("\n") + "\n\n").unwrap();
    assert_eq!(load_idx_dir(dir.path()).unwrap().test.class_names(), names);
    // Fewer names than labels: the labels file is named in the error.
    std::fs::write(dir.path().join("classes.txt"), "a\nb\n").unwrap();
    let e = load_idx_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("train-labels-idx1-ubyte"), "{e}");
}

fn assert_names(e: &Error, path: &Path) {
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn truncated_files_are_errors_naming_the_path() {
    for gzip in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_idx_dir(dir.path(), 12, 5, gzip);
        let ext = if gzip { ".gz" } else { "" };
        let path = dir.path().join(format!("train-images-idx3-ubyte{ext}"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
        let e = load_idx_dir(dir.path()).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{e}");
        assert_names(&e, &path);
    }
}

#[test]
fn corrupt_files_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), 12, 5, true);
    // Garbage inside a gzip wrapper's magic.
    let path = dir.path().join("t10k-images-idx3-ubyte.gz");
    std::fs::write(&path, [0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let e = load_idx_dir(dir.path()).unwrap_err();
    assert_names(&e, &path);
    // Wrong magic number (labels file where images belong).
    let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::copy(&labels, &path).unwrap();
    let e = load_idx_dir(dir.path()).unwrap_err();
    assert_names(&e, &path);
    assert!(e.to_string().contains("3 dimensions"), "{e}");
}

#[test]
fn label_count_must_match_image_count() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), 12, 5, false);
    let path = dir.path().join("train-labels-idx1-ubyte");
    write_idx(&path, &[11], &[0; 11], false).unwrap();
    let e = load_idx_dir(dir.path()).unwrap_err();
    assert_names(&e, &path);
    assert!(e.to_string().contains("11 labels for 12 images"), "{e}");
}

#[test]
fn missing_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), 3, 3, true);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = load_idx_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("t10k-labels-idx1-ubyte"), "{e}");
}
