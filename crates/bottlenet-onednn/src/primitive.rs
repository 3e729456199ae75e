//! The oneDNN convolution primitives for one [`Conv2dShape`]: the only
//! module that calls into `ffi`.
#![allow(unsafe_code)]

use crate::Result;
use crate::shape::Conv2dShape;

/// Which memory formats the convolution primitives may choose.
///
/// Measured (Xeon with AVX-512, 2 OpenMP threads, batch 64, the
/// Fashion-MNIST backbone of `examples/conv_bench.rs`, all three passes
/// over the eight layers): [`Format::Any`] — blocked layouts (`nChw16c`
/// activations, `ABcd16b16a`-style weights) chosen by the primitive
/// (`jit:avx512_core`, `jit_1x1:avx512_core`), plain buffers reordered in
/// and out — about 11 ms; [`Format::Plain`] 40-70 ms (plain tags make
/// oneDNN fall back to im2col + GEMM, `x64:gemm:jit`, 3-10x slower on the
/// 3x3 layers); PyTorch 1.13 on the same oneDNN about 16 ms. `Plain` only
/// wins where the reorders dominate: the 1x1 stride-2 shortcuts (~30%
/// faster) and the 1-channel stem's backward-data (which training does not
/// need). [`Format::Tuned`] takes the faster per pass and measured ~7%
/// below `Any` in total, but its pick depends on timing (so results are not
/// bit-reproducible between runs); `Any` is therefore the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `dnnl_format_tag_any`: the primitive picks (blocked) formats; plain
    /// buffers are reordered in and out, skipping a reorder whenever the
    /// chosen format already is the plain one.
    #[default]
    Any,
    /// Plain `nchw`/`oihw`/`goihw` for every tensor: no reorders, but oneDNN
    /// then mostly falls back to its im2col + GEMM implementation.
    Plain,
    /// On the first call of each pass (forward, backward-data,
    /// backward-weights, with/without bias) build both the `Any` and the
    /// `Plain` primitive, time each on the caller's buffers (best of 3
    /// after a warm-up) and keep the faster for all later calls. Wins where
    /// the reorders cost more than the blocked kernel saves (1x1 shortcuts,
    /// the 1-channel stem's backward-data); the pick depends on timing, so
    /// it can differ between runs on a loaded machine.
    Tuned,
}

/// The convolution algorithm requested from oneDNN.
///
/// [`Algorithm::Direct`] is the default. With `Auto` oneDNN 2.6 picks f32
/// Winograd (`jit_wino_4x3`) for the stride-1 3x3 layers: ~15% faster on
/// 64->64 at 7x7, but 1.5x slower on 16->16 at 28x28, 7x slower on the
/// 1-channel stem, 10-20 MB of scratchpad per primitive, and slightly
/// different rounding; in total it measured ~20% slower than `Direct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `dnnl_convolution_direct`.
    #[default]
    Direct,
    /// `dnnl_convolution_auto` (direct or Winograd, chosen by oneDNN).
    Auto,
}

pub use imp::Conv2dKernels;
pub use network_imp::Network;

#[cfg(onednn_linked)]
mod network_plan;
#[cfg(onednn_linked)]
mod winograd_step;
#[cfg(onednn_linked)]
use network_plan as network_imp;

#[cfg(not(onednn_linked))]
mod network_imp {
    use crate::network::{NetworkBuilder, ValueId};
    use crate::{Error, Result};
    use std::convert::Infallible;

    /// A planned inference network. This build has no oneDNN: none can be planned.
    #[derive(Debug)]
    pub struct Network {
        never: Infallible,
    }

    impl Network {
        /// Always [`Error::NotLinked`] in this build.
        pub(crate) fn plan(_builder: NetworkBuilder, _output: ValueId, _threads: usize) -> Result<Self> {
            Err(Error::NotLinked)
        }

        /// Unreachable: no value exists.
        pub fn output_dims(&self) -> [usize; 4] {
            match self.never {}
        }

        /// Unreachable: no value exists.
        pub fn threads(&self) -> usize {
            match self.never {}
        }

        /// Unreachable: no value exists.
        pub fn describe(&self) -> &[String] {
            match self.never {}
        }

        /// Unreachable: no value exists.
        pub fn run(&mut self, _: &[f32], _: &mut [f32]) -> Result<()> {
            match self.never {}
        }
    }
}

/// Checks the lengths of the forward buffers.
#[cfg_attr(not(onednn_linked), allow(dead_code))]
fn check_forward(s: &Conv2dShape, input: usize, weight: usize, bias: Option<usize>, output: usize) -> Result<()> {
    Conv2dShape::check_len("input", input, s.input_len())?;
    Conv2dShape::check_len("weight", weight, s.weight_len())?;
    if let Some(bias) = bias {
        Conv2dShape::check_len("bias", bias, s.bias_len())?;
    }
    Conv2dShape::check_len("output", output, s.output_len())
}

/// Checks the lengths of the backward-data buffers.
#[cfg_attr(not(onednn_linked), allow(dead_code))]
fn check_backward_data(s: &Conv2dShape, grad_output: usize, weight: usize, grad_input: usize) -> Result<()> {
    Conv2dShape::check_len("grad_output", grad_output, s.output_len())?;
    Conv2dShape::check_len("weight", weight, s.weight_len())?;
    Conv2dShape::check_len("grad_input", grad_input, s.input_len())
}

/// Checks the lengths of the backward-weights buffers.
#[cfg_attr(not(onednn_linked), allow(dead_code))]
fn check_backward_weights(
    s: &Conv2dShape,
    input: usize,
    grad_output: usize,
    grad_weight: usize,
    grad_bias: Option<usize>,
) -> Result<()> {
    Conv2dShape::check_len("input", input, s.input_len())?;
    Conv2dShape::check_len("grad_output", grad_output, s.output_len())?;
    Conv2dShape::check_len("grad_weight", grad_weight, s.weight_len())?;
    if let Some(grad_bias) = grad_bias {
        Conv2dShape::check_len("grad_bias", grad_bias, s.bias_len())?;
    }
    Ok(())
}

#[cfg(onednn_linked)]
mod handles;
#[cfg(onednn_linked)]
mod kernels;
#[cfg(onednn_linked)]
use kernels as imp;

#[cfg(not(onednn_linked))]
mod imp {
    use super::{Algorithm, Format};
    use crate::shape::Conv2dShape;
    use crate::{Error, Result};
    use std::convert::Infallible;

    /// Forward, backward-data and backward-weights convolution primitives
    /// for one [`Conv2dShape`]. This build has no oneDNN: every constructor
    /// returns [`Error::NotLinked`].
    #[derive(Debug)]
    pub struct Conv2dKernels {
        never: Infallible,
    }

    impl Conv2dKernels {
        /// Always [`Error::NotLinked`] in this build.
        pub fn new(shape: Conv2dShape) -> Result<Self> {
            Self::with_options(shape, Format::default(), Algorithm::default())
        }

        /// Always [`Error::NotLinked`] in this build.
        pub fn with_options(_shape: Conv2dShape, _format: Format, _algorithm: Algorithm) -> Result<Self> {
            Err(Error::NotLinked)
        }

        /// Unreachable: no value exists.
        pub fn shape(&self) -> &Conv2dShape {
            match self.never {}
        }

        /// Unreachable: no value exists.
        pub fn describe(&self) -> String {
            match self.never {}
        }

        /// Unreachable: no value exists.
        pub fn forward(&mut self, _: &[f32], _: &[f32], _: Option<&[f32]>, _: &mut [f32]) -> Result<()> {
            match self.never {}
        }

        /// Unreachable: no value exists.
        pub fn backward_data(&mut self, _: &[f32], _: &[f32], _: &mut [f32]) -> Result<()> {
            match self.never {}
        }

        /// Unreachable: no value exists.
        pub fn backward_weights(&mut self, _: &[f32], _: &[f32], _: &mut [f32], _: Option<&mut [f32]>) -> Result<()> {
            match self.never {}
        }
    }
}
