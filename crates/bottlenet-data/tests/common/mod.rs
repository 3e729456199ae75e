//! Tiny generated fixtures shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use image::{Rgb, RgbImage};

/// `n` IDX images of `rows × cols` whose pixel `(i, y, x)` is `(i·7 + y·cols + x) mod 256`,
/// with labels `i mod classes`.
pub fn idx_fixture(n: usize, rows: usize, cols: usize, classes: u8) -> (Vec<u8>, Vec<u8>) {
    let images = (0..n * rows * cols)
        .map(|k| {
            let (i, p) = (k / (rows * cols), k % (rows * cols));
            ((i * 7 + p) % 256) as u8
        })
        .collect();
    let labels = (0..n).map(|i| (i % usize::from(classes)) as u8).collect();
    (images, labels)
}

/// Writes the four IDX files of a dataset with `n_train`/`n_test` images of 4×3 into `dir`.
pub fn write_idx_dir(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
    let ext = if gzip { ".gz" } else { "" };
    for (split, n) in [("train", n_train), ("t10k", n_test)] {
        let (images, labels) = idx_fixture(n, 4, 3, 10);
        bottlenet_data::write_idx(
            &dir.join(format!("{split}-images-idx3-ubyte{ext}")),
            &[n, 4, 3],
            &images,
            gzip,
        )
        .unwrap();
        bottlenet_data::write_idx(
            &dir.join(format!("{split}-labels-idx1-ubyte{ext}")),
            &[n],
            &labels,
            gzip,
        )
        .unwrap();
    }
}

/// One CIFAR-10 record: label, then R, G, B planes where channel c of pixel p is
/// `(seed + c·50 + p) mod 256`.
pub fn cifar_record(label: u8, seed: usize) -> Vec<u8> {
    let mut r = vec![label];
    for c in 0..3 {
        r.extend((0..1024).map(|p| ((seed + c * 50 + p) % 256) as u8));
    }
    r
}

/// Writes all six CIFAR-10 batch files (`per_batch` records each) into `dir`.
pub fn write_cifar_dir(dir: &Path, per_batch: usize) {
    let files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (f, name) in files.iter().enumerate() {
        let bytes: Vec<u8> = (0..per_batch)
            .flat_map(|i| cifar_record((i % 10) as u8, f * 100 + i))
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A `w × h` RGB image filled with `color`, with a white pixel at the top-left corner.
pub fn solid(w: u32, h: u32, color: [u8; 3]) -> RgbImage {
    let mut img = RgbImage::from_pixel(w, h, Rgb(color));
    img.put_pixel(0, 0, Rgb([255, 255, 255]));
    img
}
