//! The stem's max-pool (torchvision: 3×3, stride 2, padding 1) as strided maxima.
//!
//! burn flex's max-pool computes the arg-max index of every window beside its value, one window
//! at a time; in the ResNet-50 RB1 head it took as long as the 7×7 stem convolution
//! (`bench --only ops`, docs/engines.md). A max over a k×k window is separable: the max of k
//! column-shifted strided views, then of k row-shifted ones, 2(k − 1) element-wise maxima over
//! whole tensors. Max is exact, so the values equal burn's max-pool bit for bit (padding is −∞,
//! as in burn and PyTorch, so it never wins).

use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::ops::PadMode;
use burn::tensor::{Slice, Tensor};

/// `pool.forward(x)`, through strided maxima where the configuration allows (explicit symmetric
/// padding, no dilation, floor mode, padding at most half the window as PyTorch requires);
/// burn's own max-pool otherwise.
///
/// # Shapes
/// - `x`: `[batch, C, H, W]`
/// - output: `[batch, C, ⌊(H + 2p − k)/s⌋ + 1, ⌊(W + 2p − k)/s⌋ + 1]`
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [kh, kw] = pool.kernel_size;
    let [sh, sw] = pool.stride;
    let (ph, pw) = match pool.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => (top, left),
        PaddingConfig2d::Valid => (0, 0),
        _ => return pool.forward(x),
    };
    let [_, _, h, w] = x.dims();
    let fits = pool.dilation == [1, 1] && !pool.ceil_mode && 2 * ph <= kh && 2 * pw <= kw && h + 2 * ph >= kh && w + 2 * pw >= kw;
    if !fits || kh == 0 || kw == 0 || sh == 0 || sw == 0 {
        return pool.forward(x);
    }
    let (out_h, out_w) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
    let padded = if ph + pw > 0 { x.pad((pw, pw, ph, ph), PadMode::Constant(f32::NEG_INFINITY)) } else { x };
    let strided = |start: usize, stride: usize, count: usize| Slice::new(start as isize, Some((start + stride * (count - 1) + 1) as isize), stride as isize);
    let all = Slice::new(0, None, 1);
    // Columns: [N, C, H + 2p, out_w] holding the max over each window's kw columns.
    let columns = (1..kw).fold(padded.clone().slice([all, all, all, strided(0, sw, out_w)]), |acc, dx| {
        acc.max_pair(padded.clone().slice([all, all, all, strided(dx, sw, out_w)]))
    });
    (1..kh).fold(columns.clone().slice([all, all, strided(0, sh, out_h), all]), |acc, dy| {
        acc.max_pair(columns.clone().slice([all, all, strided(dy, sh, out_h), all]))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn equals_burns_max_pool_bit_for_bit() {
        let device = Device::flex();
        device.seed(3);
        let configs = [
            MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            MaxPool2dConfig::new([2, 2]).with_strides([2, 2]),
            MaxPool2dConfig::new([3, 2]).with_strides([1, 2]).with_padding(PaddingConfig2d::Explicit(1, 0, 1, 0)),
        ];
        for config in configs {
            let pool = config.init();
            for [h, w] in [[112, 112], [7, 9], [4, 3], [28, 28]] {
                // Negative values too, so −∞ padding (not 0) is what keeps borders right.
                let x = Tensor::<4>::random([2, 3, h, w], Distribution::Uniform(-1.0, 1.0), &device);
                let expected = pool.forward(x.clone()).into_data();
                let got = max_pool2d(&pool, x).into_data();
                assert_eq!(got.shape(), expected.shape(), "{config:?} on {h}x{w}");
                assert_eq!(got.try_to_vec::<f32>().unwrap(), expected.try_to_vec::<f32>().unwrap(), "{config:?} on {h}x{w}");
            }
        }
    }
}
