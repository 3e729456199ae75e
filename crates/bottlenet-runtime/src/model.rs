//! The two halves of a split network as the runtime sees them (paper §3.4: both ends hold every
//! split's half). The real implementation (the `bottlenet-model` bundle) lives elsewhere; the
//! runtime only needs these traits, so it builds without a deep-learning framework.

use bottlenet_codec::{CodecParams, FeatureTensor, Shape};

use crate::error::{Error, Result};

/// The name of the cloud-only path: the phone sends a JPEG of the input image.
pub const CLOUD_ONLY: &str = "cloud-only";
/// The name of the mobile-only path: the phone runs the whole network and sends nothing.
pub const MOBILE_ONLY: &str = "mobile-only";

/// Top-k returned when a request asks for 0.
pub const DEFAULT_TOP_K: usize = 5;

/// An 8-bit input image as stored (paper §3.2: "input images which are stored in 8-bit RGB
/// format"), channels-first: `pixels[c·H·W + y·W + x]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
}

impl Image {
    /// Checks that `pixels` holds exactly `channels·height·width` values.
    pub fn new(channels: usize, height: usize, width: usize, pixels: Vec<u8>) -> Result<Self> {
        let want = channels
            .checked_mul(height)
            .and_then(|n| n.checked_mul(width))
            .ok_or_else(|| Error::InvalidImage("image dimensions overflow".into()))?;
        if want == 0 || pixels.len() != want {
            return Err(Error::InvalidImage(format!(
                "{channels}×{height}×{width} image needs {want} pixels, got {}",
                pixels.len()
            )));
        }
        Ok(Image {
            channels,
            height,
            width,
            pixels,
        })
    }
}

/// The server side of a model: for every split `j`, restoration unit + blocks `j+1..N`; plus the
/// whole network for the cloud-only path.
///
/// Every method that computes is called on a dedicated worker thread, never on the async
/// reactor, and may block. Frames are decoded (JPEG⁻¹, untile, dequantize) by the runtime with
/// `bottlenet_codec::decode`, so the pixels the server sees are the ones training saw (DESIGN §1).
pub trait CloudHalf: Send + Sync + 'static {
    fn model_name(&self) -> &str;
    /// Class labels, indexed like the logits.
    fn class_names(&self) -> &[String];
    /// The split points served, e.g. `["rb1", "rb4"]`.
    fn splits(&self) -> Vec<String>;
    /// The feature shape `(c', H', W')` that frames of `split` carry; `None` for an unknown split.
    fn feature_shape(&self, split: &str) -> Option<Shape>;
    /// The codec, quality and quantizer bits that frames of `split` carry (the manifest's);
    /// `None` for an unknown split. The server refuses a frame whose header differs from this
    /// or from [`feature_shape`](Self::feature_shape) before decoding it.
    fn codec_params(&self, split: &str) -> Option<CodecParams>;
    /// Restoration unit + tail on a batch of decoded features, all of one split, all of
    /// `feature_shape(split)`. Returns one logit vector per sample, in order.
    fn tail(&self, split: &str, features: &[FeatureTensor]) -> Result<Vec<Vec<f32>>>;
    /// Cloud-only: turns a JPEG of the input image into the network's input tensor
    /// (decode, resize/crop, normalise). A bad image is `Error::InvalidImage`; a JPEG whose
    /// headers declare another size than the model's input must be refused before its pixels
    /// are decoded (the codec crate's JPEG decoder does so when given the expected size).
    fn decode_image(&self, jpeg: &[u8]) -> Result<FeatureTensor>;
    /// Cloud-only: the whole network on a batch of input tensors from `decode_image`.
    fn full(&self, inputs: &[FeatureTensor]) -> Result<Vec<Vec<f32>>>;
}

/// The phone side of a model: for every split `j`, stem + blocks `1..j` + reduction unit +
/// quantizer + codec; plus the whole network for the mobile-only path. Methods block while they
/// compute; the client calls them in place on a multi-threaded runtime (`block_in_place`) and
/// on the blocking pool on a current-thread one.
pub trait PhoneHalf: Send + Sync + 'static {
    fn model_name(&self) -> &str;
    fn class_names(&self) -> &[String];
    fn splits(&self) -> Vec<String>;
    /// Head + reduction + quantize + tile + encode: one complete wire frame (paper §2.2).
    fn encode(&self, split: &str, image: &Image) -> Result<Vec<u8>>;
    /// The whole network on the phone: logits.
    fn full(&self, image: &Image) -> Result<Vec<f32>>;
    /// A JPEG of the input image at `quality`, for the cloud-only path.
    fn jpeg_input(&self, image: &Image, quality: u8) -> Result<Vec<u8>>;
}

/// One entry of a top-k answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScore {
    pub index: usize,
    pub label: String,
    /// Softmax probability.
    pub score: f32,
}

/// Softmax over `logits`, then the `k` most probable classes, best first (ties: lower index
/// first). Labels come from `class_names` where there is one, else the index.
pub fn top_k(logits: &[f32], k: usize, class_names: &[String]) -> Vec<ClassScore> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&z| (z - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|index| ClassScore {
            index,
            label: class_names
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string()),
            score: if sum > 0.0 && sum.is_finite() {
                exps[index] / sum
            } else {
                f32::NAN
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_logit_and_sums_softmax() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let top = top_k(&[0.5, 2.0, -1.0], 3, &names);
        let order: Vec<usize> = top.iter().map(|c| c.index).collect();
        assert_eq!(order, vec![1, 0, 2]);
        assert_eq!(top[0].label, "b");
        let total: f32 = top.iter().map(|c| c.score).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(
            (top[0].score - 2.0f32.exp() / (0.5f32.exp() + 2.0f32.exp() + (-1.0f32).exp())).abs()
                < 1e-5
        );
    }

    #[test]
    fn top_k_breaks_ties_by_index_and_truncates() {
        let top = top_k(&[1.0, 1.0, 1.0, 0.0], 2, &[]);
        assert_eq!(top.iter().map(|c| c.index).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(top[1].label, "1");
    }

    #[test]
    fn image_checks_its_size() {
        assert!(Image::new(1, 2, 2, vec![0; 4]).is_ok());
        assert!(Image::new(1, 2, 2, vec![0; 3]).is_err());
        assert!(Image::new(0, 2, 2, vec![]).is_err());
    }
}
