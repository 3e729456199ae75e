//! Seeded, shuffled mini-batches decoded in parallel.
//!
//! The order of an epoch is a pure function of `(seed, epoch)` and each sample's augmentation
//! of `(seed, epoch, index)`, so a run resumed at epoch `e`, batch `b` sees exactly the batches
//! an uninterrupted run would have seen.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::dataset::{Augment, Dataset};
use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// How batches are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Samples per batch (the last batch may be smaller unless `drop_last`).
    pub batch_size: usize,
    /// Shuffle the order every epoch (training); otherwise index order (evaluation).
    pub shuffle: bool,
    /// Read samples with [`Augment::Train`] (training); otherwise [`Augment::Eval`].
    pub augment: bool,
    /// Leave out a final batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the order and of the augmentation.
    pub seed: u64,
}

impl BatchOptions {
    /// Shuffled, augmented, last partial batch dropped.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        Self {
            batch_size,
            shuffle: true,
            augment: true,
            drop_last: true,
            seed,
        }
    }

    /// In order, not augmented, every sample included.
    pub fn eval(batch_size: usize) -> Self {
        Self {
            batch_size,
            shuffle: false,
            augment: false,
            drop_last: false,
            seed: 0,
        }
    }
}

/// A mini-batch: `pixels` is `N × C × H × W` row-major (`shape`), normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    /// The dataset index of each sample.
    pub indices: Vec<usize>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch holds no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Cuts a dataset into batches, epoch by epoch.
#[derive(Debug, Clone)]
pub struct Batcher {
    dataset: Arc<dyn Dataset>,
    options: BatchOptions,
}

impl Batcher {
    /// `options.batch_size` must be positive.
    pub fn new(dataset: Arc<dyn Dataset>, options: BatchOptions) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::InvalidOption("batch size must be positive".into()));
        }
        Ok(Self { dataset, options })
    }

    /// The dataset batched.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The options in force.
    pub fn options(&self) -> &BatchOptions {
        &self.options
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.options.batch_size);
        if self.options.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The order samples are visited in `epoch`: a seeded permutation of all indices when
    /// shuffling, else `0..len`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.options.shuffle {
            order.shuffle(&mut stream(Purpose::Shuffle, self.options.seed, epoch, 0));
        }
        order
    }

    /// The batches of `epoch`, in order.
    pub fn epoch(&self, epoch: u64) -> Epoch<'_> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch `first` on (resuming inside an epoch).
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Epoch<'_> {
        Epoch {
            batcher: self,
            epoch,
            order: self.order(epoch),
            next: first,
            end: self.num_batches(),
        }
    }

    /// Batch `index` of `epoch` on its own.
    pub fn batch(&self, epoch: u64, index: usize) -> Result<Batch> {
        let n = self.num_batches();
        if index >= n {
            return Err(Error::IndexOutOfRange { index, len: n });
        }
        self.assemble(epoch, &self.order(epoch), index)
    }

    /// Decodes batch `index` of `order` in parallel, one sample per rayon task, straight into
    /// its slot of the output.
    fn assemble(&self, epoch: u64, order: &[usize], index: usize) -> Result<Batch> {
        let b = self.options.batch_size;
        let indices = order[index * b..((index + 1) * b).min(order.len())].to_vec();
        let [c, h, w] = self.dataset.input_shape();
        let per = c * h * w;
        let augment = if self.options.augment {
            Augment::Train {
                seed: self.options.seed,
                epoch,
            }
        } else {
            Augment::Eval
        };
        let mut pixels = vec![0f32; indices.len() * per];
        let mut labels = vec![0u32; indices.len()];
        pixels
            .par_chunks_mut(per)
            .zip(labels.par_iter_mut())
            .zip(indices.par_iter())
            .try_for_each(|((out, label), &i)| -> Result<()> {
                let sample = self.dataset.get(i, augment)?;
                if sample.pixels.len() != per {
                    return Err(Error::SampleShape {
                        index: i,
                        expected: per,
                        got: sample.pixels.len(),
                    });
                }
                out.copy_from_slice(&sample.pixels);
                *label = sample.label;
                Ok(())
            })?;
        Ok(Batch {
            shape: [indices.len(), c, h, w],
            pixels,
            labels,
            indices,
        })
    }
}

/// The batches of one epoch; each item is decoded when it is asked for.
#[derive(Debug)]
pub struct Epoch<'a> {
    batcher: &'a Batcher,
    epoch: u64,
    order: Vec<usize>,
    next: usize,
    end: usize,
}

impl Iterator for Epoch<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        Some(self.batcher.assemble(self.epoch, &self.order, index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.saturating_sub(self.next);
        (left, Some(left))
    }

    /// Skips without decoding the skipped batches.
    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.next = self.next.saturating_add(n);
        self.next()
    }
}

impl ExactSizeIterator for Epoch<'_> {}
