//! CIFAR-10 binary batches: `data_batch_1.bin` … `data_batch_5.bin` (training) and
//! `test_batch.bin`, each a sequence of 3073-byte records (1 label byte, then 32×32 red,
//! green and blue planes), with class names in `batches.meta.txt`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::dataset::{DatasetPair, Normalization};
use crate::error::{Error, Result};
use crate::idx::read_class_names;
use crate::memory::{MemoryDataset, TrainTransform};

const FORMAT: &str = "CIFAR-10 batch";
const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;

/// CIFAR-10's class names, used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Training files in order.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// The test file.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";

/// The directory holding the batches: `dir` itself or its `cifar-10-batches-bin/` (as unpacked
/// from the official archive). `None` if neither holds `data_batch_1.bin`.
pub fn find_cifar10_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| d.join(CIFAR10_TRAIN_FILES[0]).is_file())
}

/// Loads CIFAR-10 from `dir` (see [`find_cifar10_dir`]). All five training batches and the test
/// batch must be present. Training reads use the usual pad-4 random crop and random flip.
pub fn load_cifar10_dir(dir: &Path) -> Result<DatasetPair> {
    let root = find_cifar10_dir(dir).ok_or_else(|| {
        Error::not_a_dataset(dir, "no data_batch_1.bin (CIFAR-10 binary expected)")
    })?;
    let meta = root.join("batches.meta.txt");
    let class_names = if meta.is_file() {
        read_class_names(&meta)?
    } else {
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
    };
    let train_paths: Vec<PathBuf> = CIFAR10_TRAIN_FILES.iter().map(|f| root.join(f)).collect();
    let batches = train_paths
        .par_iter()
        .map(|p| read_batch(p, class_names.len()))
        .collect::<Result<Vec<_>>>()?;
    let (mut train_images, mut train_labels) = (Vec::new(), Vec::new());
    for (images, labels) in batches {
        train_images.extend(images);
        train_labels.extend(labels);
    }
    let (test_images, test_labels) = read_batch(&root.join(CIFAR10_TEST_FILE), class_names.len())?;
    let make = |split: &str, images, labels| -> Result<MemoryDataset> {
        Ok(MemoryDataset::new(
            format!("cifar10/{split}"),
            [3, SIDE, SIDE],
            images,
            labels,
            class_names.clone(),
            Normalization::cifar10(),
        )?
        .with_transform(TrainTransform::PadCrop {
            pad: 4,
            hflip: true,
        }))
    };
    Ok(DatasetPair {
        train: Arc::new(make("train", train_images, train_labels)?),
        test: Arc::new(make("test", test_images, test_labels)?),
        warnings: Vec::new(),
    })
}

/// One batch file as HWC images and labels; labels must be below `num_classes`.
pub fn read_batch(path: &Path, num_classes: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::format(
            path,
            FORMAT,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte records{}",
                bytes.len(),
                if bytes.is_empty() {
                    ""
                } else {
                    " (truncated?)"
                }
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut images = vec![0u8; n * 3 * PLANE];
    let mut labels = Vec::with_capacity(n);
    for (i, (record, out)) in bytes
        .chunks_exact(RECORD)
        .zip(images.chunks_exact_mut(3 * PLANE))
        .enumerate()
    {
        let label = record[0];
        if usize::from(label) >= num_classes {
            return Err(Error::format(
                path,
                FORMAT,
                format!("record {i} has label {label}, not below the {num_classes} classes"),
            ));
        }
        labels.push(u32::from(label));
        // Stored as three planes (CHW); kept interleaved (HWC) like every raw image here.
        let planes = &record[1..];
        for p in 0..PLANE {
            for c in 0..3 {
                out[p * 3 + c] = planes[c * PLANE + p];
            }
        }
    }
    Ok((images, labels))
}
