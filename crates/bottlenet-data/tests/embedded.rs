//! The Fashion-MNIST subset compiled into the crate, and the default-dataset resolution order.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

mod common;

use std::path::Path;

#[cfg(feature = "embedded")]
use bottlenet_data::{Augment, SYSTEM_FASHION_MNIST_DIR, embedded_subset};
use bottlenet_data::{DataSource, DatasetFormat, FolderOptions, resolve};

#[cfg(feature = "embedded")]
#[test]
fn embedded_subset_loads_with_ten_classes() {
    let pair = embedded_subset().unwrap();
    assert_eq!(pair.train.len(), 10_000);
    assert_eq!(pair.test.len(), 2_000);
    assert_eq!(pair.train.num_classes(), 10);
    assert_eq!(pair.train.class_names()[0], "T-shirt/top");
    assert_eq!(pair.train.input_shape(), [1, 28, 28]);
    // Every class is present in both halves, roughly balanced.
    for d in [&pair.train, &pair.test] {
        let mut counts = [0usize; 10];
        for i in 0..d.len() {
            counts[d.label(i).unwrap() as usize] += 1;
        }
        let expected = d.len() / 10;
        assert!(counts.iter().all(|&c| c > expected * 8 / 10), "{counts:?}");
    }
    // The pixel statistics are close to Fashion-MNIST's (0.2860 / 0.3530).
    let mut sum = 0f64;
    let mut sum_sq = 0f64;
    for i in 0..1000 {
        for &p in &pair.train.raw(i, Augment::Eval).unwrap().image.pixels {
            let x = f64::from(p) / 255.0;
            sum += x;
            sum_sq += x * x;
        }
    }
    let n = 1000.0 * 784.0;
    let mean = sum / n;
    let std = (sum_sq / n - mean * mean).sqrt();
    assert!(
        (mean - 0.2860).abs() < 0.02 && (std - 0.3530).abs() < 0.02,
        "{mean} {std}"
    );
}

#[cfg(feature = "embedded")]
#[test]
fn resolution_falls_back_to_the_embedded_subset() {
    let missing = Path::new("/nonexistent/bottlenet/fashion");
    let (pair, source) = resolve(None, Some(missing), &FolderOptions::default()).unwrap();
    assert_eq!(source, DataSource::Embedded);
    assert_eq!(pair.train.len(), 10_000);
    let (_, source) = resolve(None, None, &FolderOptions::default()).unwrap();
    assert_eq!(source, DataSource::Embedded);
}

#[test]
fn explicit_path_wins_and_is_auto_detected() {
    let dir = tempfile::tempdir().unwrap();
    common::write_idx_dir(dir.path(), 6, 4, true);
    let system = tempfile::tempdir().unwrap();
    common::write_idx_dir(system.path(), 8, 2, false);
    let (pair, source) = resolve(
        Some(dir.path()),
        Some(system.path()),
        &FolderOptions::default(),
    )
    .unwrap();
    assert_eq!(
        source,
        DataSource::Explicit {
            path: dir.path().to_path_buf(),
            format: DatasetFormat::Idx
        }
    );
    assert_eq!(pair.train.len(), 6);
    // Without an explicit path, a system directory with IDX files comes next.
    let (pair, source) = resolve(None, Some(system.path()), &FolderOptions::default()).unwrap();
    assert_eq!(
        source,
        DataSource::System {
            path: system.path().to_path_buf()
        }
    );
    assert_eq!(pair.train.len(), 8);
    // An explicit path that holds no dataset is an error naming it, never a fall-back.
    let empty = tempfile::tempdir().unwrap();
    let e = resolve(Some(empty.path()), None, &FolderOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains(&empty.path().display().to_string()),
        "{e}"
    );
}

/// When Debian's full set is installed, the embedded subset is exactly its first images.
#[cfg(feature = "embedded")]
#[test]
fn embedded_subset_is_a_prefix_of_the_system_set_when_installed() {
    let dir = Path::new(SYSTEM_FASHION_MNIST_DIR);
    if !dir.join("train-images-idx3-ubyte.gz").is_file() {
        eprintln!("{SYSTEM_FASHION_MNIST_DIR} absent; nothing to compare");
        return;
    }
    let (full, source) = resolve(None, Some(dir), &FolderOptions::default()).unwrap();
    assert_eq!(
        source,
        DataSource::System {
            path: dir.to_path_buf()
        }
    );
    assert_eq!((full.train.len(), full.test.len()), (60_000, 10_000));
    let subset = embedded_subset().unwrap();
    for (s, f) in [(&subset.train, &full.train), (&subset.test, &full.test)] {
        for i in [0, 1, 777, s.len() - 1] {
            assert_eq!(
                s.raw(i, Augment::Eval).unwrap(),
                f.raw(i, Augment::Eval).unwrap()
            );
        }
    }
}

#[cfg(not(feature = "embedded"))]
#[test]
fn without_the_embedded_subset_resolution_says_what_is_missing() {
    let missing = Path::new("/nonexistent/bottlenet/fashion");
    let e = resolve(None, Some(missing), &FolderOptions::default()).unwrap_err();
    assert!(matches!(e, bottlenet_data::Error::NoDataset(_)), "{e}");
    assert!(e.to_string().contains("dataset-fashion-mnist"), "{e}");
}
