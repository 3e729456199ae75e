//! The bottleneck unit (paper §2.1, Fig. 2–3; DESIGN §1): a learnable reduction unit on the phone
//! and its mirror, the restoration unit, on the server.
//!
//! * reduction: 1×1 conv `c→c'` + BN + ReLU, then (only when `s > 1`) a k×k conv with `k = s+1`
//!   (the paper needs `k > s` so every input is covered), stride `s`, `c'→c'`, padded so that
//!   `H' = ceil(H/s)`, + BN + ReLU;
//! * restoration: (only when `s > 1`) a k×k transposed conv, stride `s`, `c'→c'`, padded so that it
//!   gives back exactly `H×W`, + BN + ReLU, then 1×1 conv `c'→c` + BN + ReLU.
//!
//! Input of the reduction and output of the restoration have the same shape, so any split point
//! takes any `(c', s)`.
//!
//! Padding: write `H = s·q − r` with `q = ceil(H/s)` and `0 <= r < s`, and pad `p = ceil((r+1)/2)`
//! on both sides. The conv gives `floor((H + 2p − s − 1)/s) + 1 = q` because `2p − r − 1 ∈ {0, 1}`
//! is below `s`; the transposed conv gives `(q−1)·s − 2p + s + o + 1 = H` with output padding
//! `o = 2p − r − 1 ∈ {0, 1} < s`.

use crate::error::{Error, Result};
use crate::fold::{conv_bn_relu, conv_transpose_bn_relu};
use crate::observe::{OpObserver, Unobserved};
use crate::resnet::{bn, conv};
use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Where a bottleneck sits and how much it reduces: block output `C×H×W`, kept channels `c'`,
/// spatial factor `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BottleneckSpec {
    /// Shape of the features entering the reduction unit (the split point's output), `[C, H, W]`.
    pub input: [usize; 3],
    /// Channels after reduction, `c'`.
    pub c_prime: usize,
    /// Spatial reduction factor, `s` (1 = channel reduction only).
    pub s: usize,
}

/// Symmetric padding and transposed-conv output padding for one side of length `len` (module docs).
fn side_padding(len: usize, s: usize) -> (usize, usize) {
    let q = len.div_ceil(s);
    let r = q * s - len;
    let p = (r + 2) / 2;
    (p, 2 * p - r - 1)
}

impl BottleneckSpec {
    /// Checks `c' >= 1`, `s >= 1` and a non-empty input.
    pub fn validate(&self) -> Result<()> {
        if self.input.contains(&0) {
            return Err(Error::Config(format!("bottleneck input shape {:?} has an empty side", self.input)));
        }
        if self.c_prime == 0 {
            return Err(Error::Config("c' must be at least 1".into()));
        }
        if self.s == 0 {
            return Err(Error::Config("spatial factor s must be at least 1".into()));
        }
        Ok(())
    }

    /// The shape that travels (before the codec): `[c', ceil(H/s), ceil(W/s)]`.
    pub fn reduced_shape(&self) -> [usize; 3] {
        [self.c_prime, self.input[1].div_ceil(self.s), self.input[2].div_ceil(self.s)]
    }

    /// Kernel side of the spatial convs, `s + 1`.
    pub fn kernel(&self) -> usize {
        self.s + 1
    }

    /// `((p_h, p_w), (o_h, o_w))`: conv padding and transposed-conv output padding.
    pub fn paddings(&self) -> ((usize, usize), (usize, usize)) {
        let (ph, oh) = side_padding(self.input[1], self.s);
        let (pw, ow) = side_padding(self.input[2], self.s);
        ((ph, pw), (oh, ow))
    }

    /// `(reduction, restoration)` multiply-accumulates per sample (BN and ReLU not counted).
    pub fn macs(&self) -> (u64, u64) {
        let [c, h, w] = self.input;
        let [cp, hr, wr] = self.reduced_shape();
        let channel = (c * cp * h * w) as u64;
        let spatial = if self.s > 1 { (cp * cp * self.kernel() * self.kernel() * hr * wr) as u64 } else { 0 };
        // The transposed conv does the same multiply-accumulates as the conv it mirrors.
        (channel + spatial, spatial + channel)
    }
}

/// The phone's half of the bottleneck: channel then spatial reduction (Fig. 2).
#[derive(Module, Debug)]
pub struct ReductionUnit {
    /// 1×1 conv `c→c'`.
    pub channel_conv: Conv2d,
    pub channel_bn: BatchNorm,
    /// k×k conv, stride `s`, `c'→c'`; absent when `s = 1`.
    pub spatial_conv: Option<Conv2d>,
    pub spatial_bn: Option<BatchNorm>,
    input: [usize; 3],
}

/// The server's half of the bottleneck: spatial then channel restoration (Fig. 2).
#[derive(Module, Debug)]
pub struct RestorationUnit {
    /// k×k transposed conv, stride `s`, `c'→c'`; absent when `s = 1`.
    pub spatial_conv: Option<ConvTranspose2d>,
    pub spatial_bn: Option<BatchNorm>,
    /// 1×1 conv `c'→c`.
    pub channel_conv: Conv2d,
    pub channel_bn: BatchNorm,
    reduced: [usize; 3],
    output: [usize; 3],
}

/// Both halves together, as trained end to end.
#[derive(Module, Debug)]
pub struct BottleneckUnit {
    pub reduction: ReductionUnit,
    pub restoration: RestorationUnit,
}

fn check_dims(x: &Tensor<4>, expected: [usize; 3], at: &str) -> Result<()> {
    let dims = x.dims();
    if dims[1..] != expected {
        return Err(Error::shape(at, format!("[batch, {}, {}, {}]", expected[0], expected[1], expected[2]), dims));
    }
    Ok(())
}

impl ReductionUnit {
    /// A freshly initialised reduction unit.
    pub fn new(spec: &BottleneckSpec, device: &Device) -> Result<Self> {
        spec.validate()?;
        let (c, cp, s) = (spec.input[0], spec.c_prime, spec.s);
        let ((ph, pw), _) = spec.paddings();
        let spatial_conv = (s > 1).then(|| {
            Conv2dConfig::new([cp, cp], [s + 1, s + 1])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                .with_bias(false)
                .with_initializer(Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true })
                .init(device)
        });
        Ok(Self {
            channel_conv: conv(c, cp, 1, 1, 0, device),
            channel_bn: bn(cp, device),
            spatial_bn: (s > 1).then(|| bn(cp, device)),
            spatial_conv,
            input: spec.input,
        })
    }

    /// # Shapes
    /// - `x`: `[batch, C, H, W]` (the split point's output)
    /// - output: `[batch, c', ceil(H/s), ceil(W/s)]`
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        self.forward_observed(x, &mut Unobserved)
    }

    /// [`ReductionUnit::forward`], each operation run through `obs`.
    pub fn forward_observed(&self, x: Tensor<4>, obs: &mut impl OpObserver) -> Result<Tensor<4>> {
        check_dims(&x, self.input, "reduction unit input")?;
        let y = conv_bn_relu(&self.channel_conv, &self.channel_bn, x, obs);
        Ok(match (&self.spatial_conv, &self.spatial_bn) {
            (Some(conv), Some(bn)) => conv_bn_relu(conv, bn, y, obs),
            _ => y,
        })
    }
}

impl RestorationUnit {
    /// A freshly initialised restoration unit.
    pub fn new(spec: &BottleneckSpec, device: &Device) -> Result<Self> {
        spec.validate()?;
        let (c, cp, s) = (spec.input[0], spec.c_prime, spec.s);
        let ((ph, pw), (oh, ow)) = spec.paddings();
        let spatial_conv = (s > 1).then(|| {
            ConvTranspose2dConfig::new([cp, cp], [s + 1, s + 1])
                .with_stride([s, s])
                .with_padding([ph, pw])
                .with_padding_out([oh, ow])
                .with_bias(false)
                .init(device)
        });
        Ok(Self {
            spatial_conv,
            spatial_bn: (s > 1).then(|| bn(cp, device)),
            channel_conv: conv(cp, c, 1, 1, 0, device),
            channel_bn: bn(c, device),
            reduced: spec.reduced_shape(),
            output: spec.input,
        })
    }

    /// # Shapes
    /// - `z`: `[batch, c', ceil(H/s), ceil(W/s)]`
    /// - output: `[batch, C, H, W]`, exactly the split point's shape
    pub fn forward(&self, z: Tensor<4>) -> Result<Tensor<4>> {
        self.forward_observed(z, &mut Unobserved)
    }

    /// [`RestorationUnit::forward`], each operation run through `obs`.
    pub fn forward_observed(&self, z: Tensor<4>, obs: &mut impl OpObserver) -> Result<Tensor<4>> {
        check_dims(&z, self.reduced, "restoration unit input")?;
        let y = match (&self.spatial_conv, &self.spatial_bn) {
            (Some(conv), Some(bn)) => conv_transpose_bn_relu(conv, bn, z, obs),
            _ => z,
        };
        let y = conv_bn_relu(&self.channel_conv, &self.channel_bn, y, obs);
        // Holds by the padding arithmetic in the module docs; checked so a violation is an error,
        // not a panic in the backbone's residual add.
        check_dims(&y, self.output, "restoration unit output")?;
        Ok(y)
    }
}

impl BottleneckUnit {
    /// A freshly initialised bottleneck unit.
    pub fn new(spec: &BottleneckSpec, device: &Device) -> Result<Self> {
        Ok(Self { reduction: ReductionUnit::new(spec, device)?, restoration: RestorationUnit::new(spec, device)? })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    #[test]
    fn padding_gives_ceil_and_exact_restore() {
        for s in 2..=8 {
            for len in 1..=70 {
                let (p, o) = side_padding(len, s);
                let k = s + 1;
                let reduced = (len + 2 * p - k) / s + 1;
                assert_eq!(reduced, len.div_ceil(s), "conv side len={len} s={s}");
                assert!(o < s);
                let restored = (reduced - 1) * s + k + o - 2 * p;
                assert_eq!(restored, len, "transposed side len={len} s={s}");
            }
        }
    }
}
