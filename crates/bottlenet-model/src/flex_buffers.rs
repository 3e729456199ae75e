//! Plain `f32` buffers in and out of burn flex tensors, for the layers this crate runs on its own
//! kernels there (`onednn_conv`, `batch_norm`).

use std::borrow::Cow;

use burn::tensor::TensorData;
use burn_flex::FlexTensor;

/// A flex tensor's elements in row-major order (a copy only when its layout is strided).
pub(crate) fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().map(<[f32]>::to_vec).unwrap_or_default()),
    }
}

pub(crate) fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

