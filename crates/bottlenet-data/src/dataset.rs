//! The one interface every dataset sits behind, and the values it hands out.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result, Warning};

/// Per-channel normalisation: pixels are scaled to `[0, 1]` (÷255), then `(x − mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalization {
    /// One `mean`/`std` per channel; every `std` must be finite and positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(Error::InvalidOption(format!(
                "normalisation needs one mean and one std per channel, got {} and {}",
                mean.len(),
                std.len()
            )));
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::InvalidOption(format!(
                "normalisation mean must be finite and std finite and positive, got mean {mean:?}, std {std:?}"
            )));
        }
        Ok(Self { mean, std })
    }

    /// Fashion-MNIST training-set statistics (one channel).
    pub fn fashion_mnist() -> Self {
        Self {
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }

    /// MNIST training-set statistics (one channel).
    pub fn mnist() -> Self {
        Self {
            mean: vec![0.1307],
            std: vec![0.3081],
        }
    }

    /// CIFAR-10 training-set statistics per channel (R, G, B), std over all training pixels.
    pub fn cifar10() -> Self {
        Self {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// The usual ImageNet statistics (R, G, B), used for image folders (miniImageNet, §3.1).
    pub fn imagenet() -> Self {
        Self {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// Mean 0, std 1: only the ÷255 scaling.
    pub fn identity(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels.max(1)],
            std: vec![1.0; channels.max(1)],
        }
    }

    /// Statistics measured over interleaved (HWC) 8-bit pixels with `channels` channels.
    pub fn measure(pixels: &[u8], channels: usize) -> Result<Self> {
        if channels == 0 || pixels.is_empty() || !pixels.len().is_multiple_of(channels) {
            return Err(Error::InvalidOption(format!(
                "cannot measure statistics of {} bytes in {channels} channels",
                pixels.len()
            )));
        }
        let mut sum = vec![0f64; channels];
        let mut sum_sq = vec![0f64; channels];
        for px in pixels.chunks_exact(channels) {
            for (c, &v) in px.iter().enumerate() {
                let x = f64::from(v) / 255.0;
                sum[c] += x;
                sum_sq[c] += x * x;
            }
        }
        let n = (pixels.len() / channels) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sum
            .iter()
            .zip(&sum_sq)
            .map(|(s, q)| {
                let sd = (q / n - (s / n).powi(2)).max(0.0).sqrt() as f32;
                // A constant channel has std 0; 1 keeps the transform finite.
                if sd < 1e-6 { 1.0 } else { sd }
            })
            .collect();
        Self::new(mean, std)
    }

    /// Number of channels this normalisation applies to.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Per-channel means (of pixels scaled to `[0, 1]`).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-channel standard deviations (of pixels scaled to `[0, 1]`).
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// The normalised value of 8-bit pixel `value` in channel `channel`.
    pub fn apply(&self, channel: usize, value: u8) -> f32 {
        (f32::from(value) / 255.0 - self.mean[channel]) / self.std[channel]
    }
}

/// Whether a sample is read for training (random augmentation) or evaluation (deterministic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Augment {
    /// Evaluation: no randomness (image folders take the centre crop).
    Eval,
    /// Training: the dataset's random augmentation (image folders: the paper's random crop,
    /// §3.1), drawn from `(seed, epoch, index)` alone, so a resumed run sees the same pixels.
    Train { seed: u64, epoch: u64 },
}

/// An 8-bit image as the network would see it before normalisation (after any resize and crop):
/// `height × width × channels`, channels interleaved (HWC), 1 (gray) or 3 (RGB) channels.
///
/// This is what the cloud-only path JPEG-encodes and sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawImage {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// `height · width · channels` bytes, row-major, channels interleaved.
    pub pixels: Vec<u8>,
}

impl RawImage {
    /// Checks that `pixels` holds exactly `height · width · channels` bytes.
    pub fn new(width: usize, height: usize, channels: usize, pixels: Vec<u8>) -> Result<Self> {
        let expected = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(channels));
        if channels == 0 || expected != Some(pixels.len()) {
            return Err(Error::InvalidOption(format!(
                "image of {width}x{height}x{channels} cannot hold {} bytes",
                pixels.len()
            )));
        }
        Ok(Self {
            width,
            height,
            channels,
            pixels,
        })
    }

    /// The pixels as 8-bit planes, channel by channel (CHW): the layout the model input, the
    /// runtime's images and the colour JPEG codec use.
    pub fn planar(&self) -> Vec<u8> {
        let (c, plane) = (self.channels, self.width * self.height);
        let mut out = vec![0u8; self.pixels.len()];
        for (i, &p) in self.pixels.iter().enumerate() {
            out[(i % c) * plane + i / c] = p;
        }
        out
    }

    /// The image as `channels × height × width` floats (CHW), each `(p/255 − mean) / std`.
    pub fn to_chw(&self, norm: &Normalization) -> Result<Vec<f32>> {
        let c = self.channels;
        if norm.channels() != c {
            return Err(Error::InvalidOption(format!(
                "normalisation has {} channel(s) but the image has {c}",
                norm.channels()
            )));
        }
        // One 256-entry table per channel: exact, and one lookup per pixel.
        let tables: Vec<[f32; 256]> = (0..c)
            .map(|ch| std::array::from_fn(|v| norm.apply(ch, v as u8)))
            .collect();
        let plane = self.width * self.height;
        let mut out = vec![0f32; plane * c];
        for (i, px) in self.pixels.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                out[ch * plane + i] = tables[ch][usize::from(v)];
            }
        }
        Ok(out)
    }
}

/// A raw image with its class label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSample {
    pub image: RawImage,
    pub label: u32,
}

/// One network input: `pixels` is CHW (`input_shape()`), scaled to `[0, 1]` and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub pixels: Vec<f32>,
    pub label: u32,
}

/// Every dataset (IDX, CIFAR-10, image folder, embedded subset) behind one interface.
///
/// Implementations are `Send + Sync` and `get`/`raw` take `&self`, so samples are decoded in
/// parallel (see [`crate::Batcher`]). Reads are deterministic: the same `(index, augment)` gives
/// the same pixels.
pub trait Dataset: Send + Sync + fmt::Debug {
    /// A short name for logs, e.g. `fashion-mnist/train`.
    fn name(&self) -> &str;

    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class names, indexed by label.
    fn class_names(&self) -> &[String];

    /// Number of classes (labels are `0..num_classes()`).
    fn num_classes(&self) -> usize {
        self.class_names().len()
    }

    /// `[channels, height, width]` of every sample.
    fn input_shape(&self) -> [usize; 3];

    /// The normalisation `get` applies.
    fn normalization(&self) -> &Normalization;

    /// Image folders: the shorter side images are resized to before the `input_shape` crop
    /// (a model trained on this data needs the same preprocessing at serving time); `None` for
    /// datasets stored at their native size (IDX, CIFAR-10).
    fn resize(&self) -> Option<u32> {
        None
    }

    /// The label of sample `index`, without decoding its pixels.
    fn label(&self, index: usize) -> Result<u32>;

    /// Sample `index` as 8-bit pixels, after resize/crop/augmentation, before normalisation.
    fn raw(&self, index: usize, augment: Augment) -> Result<RawSample>;

    /// The file sample `index` is read from, for datasets kept as one file per sample (image
    /// folders); `None` otherwise or out of range.
    fn path(&self, index: usize) -> Option<&std::path::Path> {
        let _ = index;
        None
    }

    /// Sample `index` as normalised CHW floats.
    fn get(&self, index: usize, augment: Augment) -> Result<Sample> {
        let raw = self.raw(index, augment)?;
        Ok(Sample {
            pixels: raw.image.to_chw(self.normalization())?,
            label: raw.label,
        })
    }
}

/// A dataset's train and test halves, and the files skipped while loading them.
#[derive(Debug, Clone)]
pub struct DatasetPair {
    pub train: Arc<dyn Dataset>,
    pub test: Arc<dyn Dataset>,
    /// Files that could not be read and were left out; the caller reports them.
    pub warnings: Vec<Warning>,
}

/// `Err(IndexOutOfRange)` unless `index < len`.
pub(crate) fn check_index(index: usize, len: usize) -> Result<()> {
    if index < len {
        Ok(())
    } else {
        Err(Error::IndexOutOfRange { index, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_chw_deinterleaves_and_normalises() {
        // 2x1 RGB image: pixel 0 = (0, 255, 51), pixel 1 = (255, 0, 102).
        let img = RawImage::new(2, 1, 3, vec![0, 255, 51, 255, 0, 102]).unwrap();
        let norm = Normalization::new(vec![0.0, 0.5, 0.2], vec![1.0, 0.5, 0.1]).unwrap();
        let chw = img.to_chw(&norm).unwrap();
        let expected = [0.0, 1.0, 1.0, -1.0, 0.0, 2.0];
        for (a, b) in chw.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{chw:?}");
        }
    }

    #[test]
    fn to_chw_rejects_channel_mismatch() {
        let img = RawImage::new(1, 1, 1, vec![7]).unwrap();
        assert!(img.to_chw(&Normalization::imagenet()).is_err());
    }

    #[test]
    fn raw_image_checks_length() {
        assert!(RawImage::new(2, 2, 1, vec![0; 3]).is_err());
        assert!(RawImage::new(2, 2, 0, vec![]).is_err());
    }

    #[test]
    fn normalization_rejects_bad_std() {
        assert!(Normalization::new(vec![0.5], vec![0.0]).is_err());
        assert!(Normalization::new(vec![0.5], vec![f32::NAN]).is_err());
        assert!(Normalization::new(vec![0.5, 0.5], vec![1.0]).is_err());
    }

    #[test]
    fn measure_matches_hand_computation() {
        // Values 0 and 255 in equal numbers: mean 0.5, std 0.5.
        let n = Normalization::measure(&[0, 255, 0, 255], 1).unwrap();
        assert!((n.mean()[0] - 0.5).abs() < 1e-6);
        assert!((n.std()[0] - 0.5).abs() < 1e-6);
        // A constant channel gets std 1, never 0.
        let c = Normalization::measure(&[9, 9], 1).unwrap();
        assert!((c.std()[0] - 1.0).abs() < 1e-6);
    }
}
