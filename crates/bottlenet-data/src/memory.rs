//! Datasets held whole in memory as 8-bit pixels: IDX (MNIST, Fashion-MNIST) and CIFAR-10.

use std::sync::Arc;

use rand::Rng;

use crate::dataset::{Augment, Dataset, Normalization, RawImage, RawSample, check_index};
use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// The random augmentation an in-memory dataset applies under [`Augment::Train`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainTransform {
    /// Training reads the image unchanged (the default for IDX data).
    #[default]
    None,
    /// Pad `pad` zero pixels on every side, take a random crop of the original size, and, if
    /// `hflip`, mirror left-right with probability ½ (the usual CIFAR-10 recipe).
    PadCrop { pad: usize, hflip: bool },
}

/// Images of one fixed shape kept in memory, with labels, class names and normalisation.
///
/// Invariant: `images.len() == labels.len() · c · h · w`, each image stored HWC, every label
/// `< class_names.len()`, and `normalization.channels() == c`.
#[derive(Debug, Clone)]
pub struct MemoryDataset {
    name: String,
    shape: [usize; 3],
    images: Arc<[u8]>,
    labels: Arc<[u32]>,
    /// Which stored images this dataset shows, in order (all of them unless made by `select`).
    view: Option<Arc<[usize]>>,
    class_names: Arc<[String]>,
    normalization: Normalization,
    transform: TrainTransform,
}

impl MemoryDataset {
    /// `images` holds `labels.len()` images of `shape = [c, h, w]`, each stored HWC.
    pub fn new(
        name: impl Into<String>,
        shape: [usize; 3],
        images: Vec<u8>,
        labels: Vec<u32>,
        class_names: Vec<String>,
        normalization: Normalization,
    ) -> Result<Self> {
        let [c, h, w] = shape;
        let per_image = c * h * w;
        if per_image == 0 {
            return Err(Error::InvalidOption(format!("empty image shape {shape:?}")));
        }
        if labels.len().checked_mul(per_image) != Some(images.len()) {
            return Err(Error::InvalidOption(format!(
                "{} labels need {} bytes of {c}x{h}x{w} images, got {}",
                labels.len(),
                labels.len().saturating_mul(per_image),
                images.len()
            )));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= class_names.len())
        {
            return Err(Error::InvalidOption(format!(
                "label {l} of sample {i} is not below the {} class names",
                class_names.len()
            )));
        }
        if normalization.channels() != c {
            return Err(Error::InvalidOption(format!(
                "normalisation has {} channel(s), images have {c}",
                normalization.channels()
            )));
        }
        Ok(Self {
            name: name.into(),
            shape,
            images: images.into(),
            labels: labels.into(),
            view: None,
            class_names: class_names.into(),
            normalization,
            transform: TrainTransform::None,
        })
    }

    /// The same data with `transform` applied under [`Augment::Train`].
    pub fn with_transform(mut self, transform: TrainTransform) -> Self {
        self.transform = transform;
        self
    }

    /// The same data normalised with `normalization` (same channel count).
    pub fn with_normalization(mut self, normalization: Normalization) -> Result<Self> {
        if normalization.channels() != self.shape[0] {
            return Err(Error::InvalidOption(format!(
                "normalisation has {} channel(s), images have {}",
                normalization.channels(),
                self.shape[0]
            )));
        }
        self.normalization = normalization;
        Ok(self)
    }

    /// The augmentation applied under [`Augment::Train`].
    pub fn transform(&self) -> TrainTransform {
        self.transform
    }

    /// A dataset of the samples at `indices` (in that order), sharing this one's memory.
    /// Used for validation splits carved from a training set.
    pub fn select(&self, name: impl Into<String>, indices: &[usize]) -> Result<Self> {
        let len = self.len();
        let stored = indices
            .iter()
            .map(|&i| {
                check_index(i, len)?;
                Ok(self.stored_index(i))
            })
            .collect::<Result<Vec<usize>>>()?;
        Ok(Self {
            name: name.into(),
            view: Some(stored.into()),
            ..self.clone()
        })
    }

    fn stored_index(&self, index: usize) -> usize {
        match &self.view {
            Some(view) => view[index],
            None => index,
        }
    }

    /// The stored HWC bytes of sample `index` (already range-checked).
    fn pixels(&self, index: usize) -> &[u8] {
        let [c, h, w] = self.shape;
        let n = c * h * w;
        let s = self.stored_index(index);
        &self.images[s * n..(s + 1) * n]
    }
}

impl Dataset for MemoryDataset {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        match &self.view {
            Some(view) => view.len(),
            None => self.labels.len(),
        }
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn input_shape(&self) -> [usize; 3] {
        self.shape
    }

    fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    fn label(&self, index: usize) -> Result<u32> {
        check_index(index, self.len())?;
        Ok(self.labels[self.stored_index(index)])
    }

    fn raw(&self, index: usize, augment: Augment) -> Result<RawSample> {
        check_index(index, self.len())?;
        let [c, h, w] = self.shape;
        let src = self.pixels(index);
        let pixels = match (augment, self.transform) {
            (Augment::Train { seed, epoch }, TrainTransform::PadCrop { pad, hflip }) => {
                let mut rng = stream(Purpose::Augment, seed, epoch, index as u64);
                let dx = rng.random_range(0..=2 * pad);
                let dy = rng.random_range(0..=2 * pad);
                let flip = hflip && rng.random_bool(0.5);
                pad_crop(src, [c, h, w], pad, dx, dy, flip)
            }
            _ => src.to_vec(),
        };
        Ok(RawSample {
            image: RawImage::new(w, h, c, pixels)?,
            label: self.labels[self.stored_index(index)],
        })
    }
}

/// The `h × w` window at `(dx, dy)` of `src` padded by `pad` zeros on each side, optionally
/// mirrored left-right. `src` is HWC.
fn pad_crop(
    src: &[u8],
    [c, h, w]: [usize; 3],
    pad: usize,
    dx: usize,
    dy: usize,
    flip: bool,
) -> Vec<u8> {
    let mut out = vec![0u8; src.len()];
    for y in 0..h {
        // Row y of the crop is row y + dy of the padded image, i.e. source row y + dy − pad.
        let Some(sy) = (y + dy).checked_sub(pad).filter(|&sy| sy < h) else {
            continue;
        };
        for x in 0..w {
            let px = if flip { w - 1 - x } else { x };
            let Some(sx) = (px + dx).checked_sub(pad).filter(|&sx| sx < w) else {
                continue;
            };
            let o = (y * w + x) * c;
            let s = (sy * w + sx) * c;
            out[o..o + c].copy_from_slice(&src[s..s + c]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> MemoryDataset {
        // Three 1x2x2 images with distinct pixels.
        let images: Vec<u8> = (1..=12).collect();
        MemoryDataset::new(
            "tiny",
            [1, 2, 2],
            images,
            vec![0, 1, 1],
            vec!["a".into(), "b".into()],
            Normalization::identity(1),
        )
        .unwrap()
    }

    #[test]
    fn new_validates_lengths_and_labels() {
        let names = vec!["a".to_string()];
        let n = Normalization::identity(1);
        assert!(
            MemoryDataset::new(
                "x",
                [1, 2, 2],
                vec![0; 7],
                vec![0, 0],
                names.clone(),
                n.clone()
            )
            .is_err()
        );
        assert!(
            MemoryDataset::new(
                "x",
                [1, 2, 2],
                vec![0; 4],
                vec![1],
                names.clone(),
                n.clone()
            )
            .is_err()
        );
        assert!(MemoryDataset::new("x", [3, 2, 2], vec![0; 12], vec![0], names, n).is_err());
    }

    #[test]
    fn eval_reads_the_stored_image() {
        let d = tiny();
        let s = d.raw(1, Augment::Eval).unwrap();
        assert_eq!(s.image.pixels, vec![5, 6, 7, 8]);
        assert_eq!(s.label, 1);
        assert!(matches!(
            d.raw(3, Augment::Eval),
            Err(Error::IndexOutOfRange { index: 3, len: 3 })
        ));
    }

    #[test]
    fn select_views_a_subset_in_order() {
        let d = tiny().select("sub", &[2, 0]).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d.raw(0, Augment::Eval).unwrap().image.pixels,
            vec![9, 10, 11, 12]
        );
        assert_eq!(d.label(1).unwrap(), 0);
        assert!(tiny().select("bad", &[3]).is_err());
    }

    #[test]
    fn pad_crop_shifts_pads_and_flips() {
        // 1 channel, 2x3 image: rows [1 2 3], [4 5 6].
        let src = [1, 2, 3, 4, 5, 6];
        // No shift (dx = dy = pad) is the identity.
        assert_eq!(pad_crop(&src, [1, 2, 3], 1, 1, 1, false), src);
        // dx = dy = 0 moves the image one pixel right and down, zeros enter at the top/left.
        assert_eq!(
            pad_crop(&src, [1, 2, 3], 1, 0, 0, false),
            [0, 0, 0, 0, 1, 2]
        );
        // Flip only mirrors each row.
        assert_eq!(pad_crop(&src, [1, 2, 3], 1, 1, 1, true), [3, 2, 1, 6, 5, 4]);
    }

    #[test]
    fn train_transform_is_seeded() {
        let d = tiny().with_transform(TrainTransform::PadCrop {
            pad: 1,
            hflip: true,
        });
        let a = |seed, epoch| {
            d.raw(0, Augment::Train { seed, epoch })
                .unwrap()
                .image
                .pixels
        };
        assert_eq!(a(5, 2), a(5, 2));
        // Over several epochs the crop must change at least once (9 offsets × 2 flips).
        assert!((0..8).any(|e| a(5, e) != a(5, 0)));
        // Eval is never augmented.
        assert_eq!(
            d.raw(0, Augment::Eval).unwrap().image.pixels,
            vec![1, 2, 3, 4]
        );
    }
}
