//! The real codec inside the forward pass, with a straight-through backward (paper §2.2, Fig. 4).

use crate::error::{Error, Result};
use bottlenet_codec::{CodecParams, Shape, roundtrip_batch};
use burn::tensor::{Tensor, TensorData};

/// Copies a tensor's values to the host as `f32`, row-major.
pub(crate) fn to_host(x: Tensor<4>) -> Result<Vec<f32>> {
    x.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Config(format!("cannot read features back to the host: {e:?}")))
}

/// Runs quantize → tile → JPEG → untile → dequantize on every sample of `x` on the host, exactly as
/// phone and server do (so training sees the server's pixels), and returns the decoded features
/// with each sample's real frame size in bytes.
///
/// Backward treats the codec as the identity (paper §2.2: "we treat this pair as an identity
/// function during backpropagation"): on an autodiff device the result is
/// `x + (roundtrip(x) − x).detach()`, whose value is the round trip and whose gradient with respect
/// to `x` is the incoming gradient unchanged. Elsewhere the decoded values are returned as they are.
///
/// # Shapes
/// - `x`: `[batch, c', H', W']`
/// - output: the same shape
pub fn codec_straight_through(x: Tensor<4>, params: &CodecParams) -> Result<(Tensor<4>, Vec<usize>)> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let host = to_host(x.clone().detach())?;
    let (decoded, sizes) = roundtrip_batch(&host, n, Shape::new(c, h, w), params)?;
    let roundtrip = Tensor::<4>::from_data(TensorData::new(decoded, [n, c, h, w]), &device);
    let y = if device.is_autodiff() { x.clone() + (roundtrip - x.detach()) } else { roundtrip };
    Ok((y, sizes))
}
