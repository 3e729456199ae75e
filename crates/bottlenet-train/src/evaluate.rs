//! Top-1 accuracy with the real codec and the real frame bytes per image (one image per frame,
//! headers included), DESIGN §2.

use crate::error::{Error, Result};
use bottlenet_data::{BatchOptions, Batcher, Dataset};
use bottlenet_model::{BottleNet, CodecMode};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What `bottlenet eval` reports (its `--json` fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub split: String,
    pub c_prime: usize,
    pub s: usize,
    pub codec: String,
    pub quality: u8,
    pub bits: u8,
    /// Top-1 accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// Mean frame bytes per image (0 without a bottleneck: nothing is sent).
    pub mean_bytes: f64,
    /// 95th percentile of the frame bytes.
    pub p95_bytes: f64,
    pub images: usize,
}

/// Running tally of correct answers and frame sizes.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub correct: usize,
    pub seen: usize,
    pub frame_bytes: Vec<usize>,
}

impl Tally {
    pub fn accuracy(&self) -> f64 {
        if self.seen == 0 { 0.0 } else { self.correct as f64 / self.seen as f64 }
    }

    pub fn mean_bytes(&self) -> f64 {
        if self.frame_bytes.is_empty() { 0.0 } else { self.frame_bytes.iter().sum::<usize>() as f64 / self.frame_bytes.len() as f64 }
    }

    /// Nearest-rank 95th percentile.
    pub fn p95_bytes(&self) -> f64 {
        percentile(&self.frame_bytes, 0.95)
    }
}

/// Nearest-rank percentile of `values` (`q` in `[0, 1]`), 0 when empty.
pub fn percentile(values: &[usize], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// Builds the input and label tensors of a batch.
pub fn batch_tensors(pixels: Vec<f32>, labels: &[u32], shape: [usize; 4], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let images = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
    let targets = labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [labels.len()]), device);
    (images, targets)
}

/// Number of rows of `logits` whose argmax equals the label.
pub fn count_correct(logits: Tensor<2>, labels: &[u32]) -> Result<usize> {
    let predicted = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| Error::Invalid(format!("cannot read predictions: {e:?}")))?;
    Ok(predicted.iter().zip(labels).filter(|&(&p, &l)| p == i64::from(l)).count())
}

/// Feeds the first `limit` test images (all when `None`), in order and in batches, to `step`,
/// which returns the batch's logits and, when frames were sent, each image's frame bytes; tallies
/// top-1 hits and bytes, and shows progress. Every evaluation path (in-process or through the
/// phone and server halves) goes through here, so all count images and bytes the same way.
pub fn tally_test_set(
    test: &Arc<dyn Dataset>,
    batch_size: usize,
    limit: Option<usize>,
    device: &Device,
    progress: &indicatif::ProgressBar,
    mut step: impl FnMut(Tensor<4>) -> Result<(Tensor<2>, Option<Vec<usize>>)>,
) -> Result<Tally> {
    let batcher = Batcher::new(test.clone(), BatchOptions::eval(batch_size))?;
    let total = limit.unwrap_or(test.len()).min(test.len());
    progress.set_length(total as u64);
    let mut tally = Tally::default();
    for batch in batcher.epoch(0) {
        if tally.seen >= total {
            break;
        }
        let mut batch = batch?;
        let keep = (total - tally.seen).min(batch.len());
        if keep < batch.len() {
            let per = batch.shape[1] * batch.shape[2] * batch.shape[3];
            batch.pixels.truncate(keep * per);
            batch.labels.truncate(keep);
            batch.shape[0] = keep;
        }
        let (images, _) = batch_tensors(batch.pixels, &batch.labels, batch.shape, device);
        let (logits, frame_bytes) = step(images)?;
        tally.correct += count_correct(logits, &batch.labels)?;
        tally.seen += keep;
        tally.frame_bytes.extend(frame_bytes.unwrap_or_default());
        progress.set_position(tally.seen as u64);
        progress.set_message(format!("acc {:.2}%", 100.0 * tally.accuracy()));
    }
    Ok(tally)
}

/// Evaluates `model` (an inference copy: `model.valid()`) on up to `limit` test images.
pub fn evaluate(model: &BottleNet, test: &Arc<dyn Dataset>, mode: CodecMode, batch_size: usize, limit: Option<usize>, progress: &indicatif::ProgressBar) -> Result<EvalReport> {
    let tally = tally_test_set(test, batch_size, limit, &model.device(), progress, |images| {
        let output = model.forward_output(images, mode)?;
        Ok((output.logits, output.frame_bytes))
    })?;
    let config = model.config();
    let with_codec = mode == CodecMode::Aware;
    Ok(EvalReport {
        split: config.split_name(),
        c_prime: config.c_prime,
        s: config.s,
        codec: if with_codec { config.codec.codec.to_string() } else { "none".into() },
        quality: config.codec.quality,
        bits: config.codec.bits,
        accuracy: tally.accuracy(),
        mean_bytes: tally.mean_bytes(),
        p95_bytes: tally.p95_bytes(),
        images: tally.seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<usize> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&[7], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.95), 0.0);
    }
}
