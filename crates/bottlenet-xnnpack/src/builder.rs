//! The layers of a network on NHWC values, with every output shape worked out (and every
//! unsupported combination refused) before XNNPACK sees them.

use crate::{Error, Result};

/// One sample's NHWC extent; a flat vector of `c` values is `1×1×c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Extent {
    pub fn new(height: usize, width: usize, channels: usize) -> Self {
        Self { height, width, channels }
    }

    /// Values per sample.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Implicit padding (convolution, pooling: padded with zeros, resp. −∞) or, for a
/// deconvolution, the rows and columns cropped off its output (ONNX `pads` in both cases).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Padding {
    pub top: usize,
    pub left: usize,
    pub bottom: usize,
    pub right: usize,
}

/// A sliding window: kernel, stride and dilation (rows, columns) and the padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: Padding,
}

impl Window {
    /// The output side of a convolution or pooling along `axis` (0 rows, 1 columns), floor mode.
    fn output_side(&self, axis: usize, input: usize, what: &str) -> Result<usize> {
        let (before, after) = if axis == 0 { (self.padding.top, self.padding.bottom) } else { (self.padding.left, self.padding.right) };
        let span = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
        let padded = input + before + after;
        if padded < span {
            return Err(Error::Invalid(format!("{what}: a {}-wide window does not fit an input of {input} (padded to {padded})", span)));
        }
        Ok((padded - span) / self.stride[axis] + 1)
    }

    fn check(&self, what: &str) -> Result<()> {
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::Invalid(format!("{what}: kernel, stride and dilation must be at least 1, got {:?}, {:?}, {:?}", self.kernel, self.stride, self.dilation)));
        }
        Ok(())
    }
}

/// A handle to one value of a [`NetworkBuilder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueId(pub(crate) usize);

/// One operator of the network. Weights are in XNNPACK's layouts, given in the builder's docs.
#[derive(Clone, Debug)]
pub enum Layer {
    Convolution { input: ValueId, window: Window, groups: usize, output_channels: usize, kernel: Vec<f32>, bias: Vec<f32>, relu: bool },
    Deconvolution { input: ValueId, window: Window, adjustment: [usize; 2], groups: usize, output_channels: usize, kernel: Vec<f32>, bias: Vec<f32>, relu: bool },
    MaxPool { input: ValueId, window: Window, relu: bool },
    Add { a: ValueId, b: ValueId, relu: bool },
    Relu { input: ValueId },
    GlobalAveragePool { input: ValueId, relu: bool },
    FullyConnected { input: ValueId, outputs: usize, kernel: Vec<f32>, bias: Vec<f32>, relu: bool },
}

impl Layer {
    /// The values it reads.
    pub(crate) fn inputs(&self) -> Vec<ValueId> {
        match self {
            Layer::Add { a, b, .. } => vec![*a, *b],
            Layer::Convolution { input, .. }
            | Layer::Deconvolution { input, .. }
            | Layer::MaxPool { input, .. }
            | Layer::Relu { input }
            | Layer::GlobalAveragePool { input, .. }
            | Layer::FullyConnected { input, .. } => vec![*input],
        }
    }
}

/// Layers in run order on NHWC values: value 0 is the input, each layer makes one new value.
#[derive(Clone, Debug)]
pub struct NetworkBuilder {
    pub(crate) values: Vec<Extent>,
    pub(crate) layers: Vec<Layer>,
    /// Multiply-adds per sample of the convolutions and products.
    pub(crate) multiply_adds: f64,
}

impl NetworkBuilder {
    /// A network whose input is one NHWC sample of `input`.
    pub fn new(input: Extent) -> Result<Self> {
        if input.is_empty() {
            return Err(Error::Invalid(format!("the input extent {input:?} holds no values")));
        }
        Ok(Self { values: vec![input], layers: Vec::new(), multiply_adds: 0.0 })
    }

    /// The network's input.
    pub fn input(&self) -> ValueId {
        ValueId(0)
    }

    /// `value`'s per-sample extent.
    pub fn extent(&self, value: ValueId) -> Result<Extent> {
        self.values.get(value.0).copied().ok_or_else(|| Error::Invalid(format!("value {} is not in this network", value.0)))
    }

    /// Multiply-adds per sample (convolutions, deconvolutions and fully-connected layers).
    pub fn multiply_adds(&self) -> f64 {
        self.multiply_adds
    }

    fn push(&mut self, layer: Layer, output: Extent) -> ValueId {
        self.layers.push(layer);
        self.values.push(output);
        ValueId(self.values.len() - 1)
    }

    fn expect_len(what: &str, name: &str, got: usize, want: usize) -> Result<()> {
        if got != want {
            return Err(Error::Invalid(format!("{what}: {name} has {got} values, expected {want}")));
        }
        Ok(())
    }

    fn groups_divide(what: &str, groups: usize, input: usize, output: usize) -> Result<()> {
        if groups == 0 || !input.is_multiple_of(groups) || !output.is_multiple_of(groups) || output == 0 {
            return Err(Error::Invalid(format!("{what}: {groups} groups do not divide {input} input and {output} output channels")));
        }
        Ok(())
    }

    /// Checks a (transposed) convolution's window, groups and weight lengths (both kernel layouts
    /// hold `output_channels · kh · kw · input_channels / groups` values); `input`'s extent.
    #[allow(clippy::too_many_arguments)]
    fn check_weights(&self, what: &str, input: ValueId, window: &Window, groups: usize, output_channels: usize, kernel: &[f32], bias: &[f32]) -> Result<Extent> {
        window.check(what)?;
        let from = self.extent(input)?;
        Self::groups_divide(what, groups, from.channels, output_channels)?;
        let [kh, kw] = window.kernel;
        Self::expect_len(what, "the kernel", kernel.len(), output_channels * kh * kw * (from.channels / groups))?;
        Self::expect_len(what, "the bias", bias.len(), output_channels)?;
        Ok(from)
    }

    /// A 2-D convolution; `kernel` is `[output_channels, kh, kw, input_channels / groups]`
    /// (OHWI), `bias` has one value per output channel; `relu` clamps the output at 0.
    #[allow(clippy::too_many_arguments)]
    pub fn convolution(&mut self, input: ValueId, window: Window, groups: usize, output_channels: usize, kernel: Vec<f32>, bias: Vec<f32>, relu: bool) -> Result<ValueId> {
        let what = "convolution";
        let from = self.check_weights(what, input, &window, groups, output_channels, &kernel, &bias)?;
        let [kh, kw] = window.kernel;
        let out = Extent::new(window.output_side(0, from.height, what)?, window.output_side(1, from.width, what)?, output_channels);
        self.multiply_adds += (out.len() * kh * kw * (from.channels / groups)) as f64;
        Ok(self.push(Layer::Convolution { input, window, groups, output_channels, kernel, bias, relu }, out))
    }

    /// A 2-D transposed convolution (ONNX `ConvTranspose`): `window.padding` is cropped off the
    /// output, `adjustment` (ONNX `output_padding`, below the stride) added to its bottom and
    /// right; `kernel` is `[groups, output_channels / groups, kh, kw, input_channels / groups]`.
    #[allow(clippy::too_many_arguments)]
    pub fn deconvolution(&mut self, input: ValueId, window: Window, adjustment: [usize; 2], groups: usize, output_channels: usize, kernel: Vec<f32>, bias: Vec<f32>, relu: bool) -> Result<ValueId> {
        let what = "deconvolution";
        let from = self.check_weights(what, input, &window, groups, output_channels, &kernel, &bias)?;
        let [kh, kw] = window.kernel;
        if adjustment[0] >= window.stride[0] || adjustment[1] >= window.stride[1] {
            return Err(Error::Invalid(format!("{what}: the output adjustment {adjustment:?} must be below the stride {:?}", window.stride)));
        }
        let side = |axis: usize, input: usize, crop: usize| -> Result<usize> {
            let full = window.stride[axis] * (input - 1) + adjustment[axis] + window.dilation[axis] * (window.kernel[axis] - 1) + 1;
            full.checked_sub(crop).filter(|&s| s > 0).ok_or_else(|| Error::Invalid(format!("{what}: cropping {crop} leaves nothing of an output side of {full}")))
        };
        let p = window.padding;
        let out = Extent::new(side(0, from.height, p.top + p.bottom)?, side(1, from.width, p.left + p.right)?, output_channels);
        self.multiply_adds += (from.len() * kh * kw * (output_channels / groups)) as f64;
        Ok(self.push(Layer::Deconvolution { input, window, adjustment, groups, output_channels, kernel, bias, relu }, out))
    }

    /// Max pooling (padding counts as −∞); XNNPACK needs a window of more than one element.
    pub fn max_pool(&mut self, input: ValueId, window: Window) -> Result<ValueId> {
        let what = "max pooling";
        window.check(what)?;
        if window.kernel == [1, 1] {
            return Err(Error::Invalid(format!("{what}: a 1×1 window is not a pooling XNNPACK runs")));
        }
        let from = self.extent(input)?;
        let out = Extent::new(window.output_side(0, from.height, what)?, window.output_side(1, from.width, what)?, from.channels);
        Ok(self.push(Layer::MaxPool { input, window, relu: false }, out))
    }

    /// Element-wise `a + b` of two values of one extent; `relu` clamps the sum at 0.
    pub fn add(&mut self, a: ValueId, b: ValueId, relu: bool) -> Result<ValueId> {
        let (ea, eb) = (self.extent(a)?, self.extent(b)?);
        if ea != eb {
            return Err(Error::Invalid(format!("add: the operands' extents differ ({ea:?} and {eb:?}); broadcasting is not supported")));
        }
        Ok(self.push(Layer::Add { a, b, relu }, ea))
    }

    /// `max(x, 0)` on its own (a ReLU no earlier layer could take).
    pub fn relu(&mut self, input: ValueId) -> Result<ValueId> {
        let from = self.extent(input)?;
        Ok(self.push(Layer::Relu { input }, from))
    }

    /// The mean over rows and columns: `1×1×c`.
    pub fn global_average_pool(&mut self, input: ValueId) -> Result<ValueId> {
        let from = self.extent(input)?;
        Ok(self.push(Layer::GlobalAveragePool { input, relu: false }, Extent::new(1, 1, from.channels)))
    }

    /// `y = x·W + b` on a `1×1×inputs` value; `kernel` is `[inputs, outputs]` (burn's and ONNX
    /// Gemm's `B` layout).
    pub fn fully_connected(&mut self, input: ValueId, outputs: usize, kernel: Vec<f32>, bias: Vec<f32>, relu: bool) -> Result<ValueId> {
        let what = "fully-connected layer";
        let from = self.extent(input)?;
        if from.height != 1 || from.width != 1 {
            return Err(Error::Invalid(format!("{what}: the input is {}×{}×{}; flatten to 1×1 first (NHWC order differs from NCHW's)", from.height, from.width, from.channels)));
        }
        Self::expect_len(what, "the kernel", kernel.len(), from.channels * outputs)?;
        Self::expect_len(what, "the bias", bias.len(), outputs)?;
        self.multiply_adds += (from.channels * outputs) as f64;
        Ok(self.push(Layer::FullyConnected { input, outputs, kernel, bias, relu }, Extent::new(1, 1, outputs)))
    }

    /// Folds `y = scale·x + shift` per output channel into the convolution, deconvolution or
    /// fully-connected layer that produced `value` (an inference BatchNorm after it): its kernel's
    /// output channel `o` times `scale[o]`, its bias `scale[o]·b[o] + shift[o]`. False (nothing
    /// changed) where another kind of layer made `value`, one with a fused ReLU, or the lengths
    /// differ. The caller ensures the BatchNorm is `value`'s one reader.
    pub fn fold_affine(&mut self, value: ValueId, scale: &[f32], shift: &[f32]) -> bool {
        let Some(layer) = value.0.checked_sub(1).and_then(|i| self.layers.get_mut(i)) else { return false };
        let (kernel, bias, output_major) = match layer {
            Layer::Convolution { kernel, bias, relu: false, .. } | Layer::Deconvolution { kernel, bias, relu: false, .. } => (kernel, bias, true),
            Layer::FullyConnected { kernel, bias, relu: false, .. } => (kernel, bias, false),
            _ => return false,
        };
        let outputs = bias.len();
        if scale.len() != outputs || shift.len() != outputs || outputs == 0 {
            return false;
        }
        if output_major {
            // OHWI, and [g, O/g, kh, kw, I/g]: output channel o is the o-th contiguous run.
            let run_len = kernel.len() / outputs;
            for (o, run) in kernel.chunks_exact_mut(run_len).enumerate() {
                run.iter_mut().for_each(|w| *w *= scale[o]);
            }
        } else {
            // [inputs, outputs]: output channel o is every outputs-th value from o.
            for row in kernel.chunks_exact_mut(outputs) {
                row.iter_mut().zip(scale).for_each(|(w, a)| *w *= a);
            }
        }
        for ((b, a), t) in bias.iter_mut().zip(scale).zip(shift) {
            *b = a * *b + t;
        }
        true
    }

    /// Makes the layer that produced `value` clamp its output at 0, folding a following ReLU
    /// into it (every layer here takes an output clamp; a ReLU's output is clamped already).
    /// False where `value` is the input. The caller ensures the ReLU is `value`'s one reader.
    pub fn fuse_relu(&mut self, value: ValueId) -> bool {
        let Some(layer) = value.0.checked_sub(1).and_then(|i| self.layers.get_mut(i)) else { return false };
        match layer {
            Layer::Convolution { relu, .. }
            | Layer::Deconvolution { relu, .. }
            | Layer::MaxPool { relu, .. }
            | Layer::Add { relu, .. }
            | Layer::GlobalAveragePool { relu, .. }
            | Layer::FullyConnected { relu, .. } => *relu = true,
            Layer::Relu { .. } => {}
        }
        true
    }
}

#[cfg(test)]
mod tests;
