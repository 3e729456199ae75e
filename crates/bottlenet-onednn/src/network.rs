//! [`NetworkBuilder`]: an inference network of convolutions (with their ReLU and residual sum
//! fused), transposed convolutions, pooling and a fully-connected layer, recorded and checked in
//! pure Rust on NCHW shapes before any oneDNN object exists. [`NetworkBuilder::build`] hands it
//! to `primitive::network_plan`, which creates the primitives.
//!
//! Invariants the builder keeps:
//! * every value has NCHW dims (a fully-connected output is `[n, k, 1, 1]`) and is made by one
//!   layer, before every layer that reads it;
//! * a layer's post-ops are applied in oneDNN's order: bias, then the residual sum, then ReLU;
//!   so a ReLU fuses after an Add, and a BatchNorm folds only into a convolution with neither;
//! * weights are kept in ONNX's layouts (`Conv`: `[O, C/g, kh, kw]`, `ConvTranspose`:
//!   `[C, O/g, kh, kw]`, `Gemm`'s B as `[outputs, inputs]`); the plan reorders them once.

use crate::{Error, Result};

/// A value of the network (its input, or a layer's output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueId(pub(crate) usize);

/// The geometry of a 2-D window (ONNX conventions: dilation 1 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sh, sw]`.
    pub stride: [usize; 2],
    /// `[dh, dw]`, 1 = dense.
    pub dilation: [usize; 2],
    /// ONNX `pads`: `[top, left, bottom, right]`.
    pub padding: [usize; 4],
}

impl Window {
    /// The kernel's extent along axis `a` once dilated.
    fn extent(&self, a: usize) -> usize {
        (self.kernel[a] - 1) * self.dilation[a] + 1
    }

    fn check(&self, what: &str) -> Result<()> {
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::Shape(format!("{what}: kernel, stride and dilation must be at least 1, got {self:?}")));
        }
        Ok(())
    }

    /// `[oh, ow]` of a convolution or pooling over `[h, w]`.
    fn output(&self, what: &str, h: usize, w: usize) -> Result<[usize; 2]> {
        self.check(what)?;
        let along = |a: usize, size: usize, before: usize, after: usize| {
            (size + before + after).checked_sub(self.extent(a)).map(|room| room / self.stride[a] + 1)
        };
        match (along(0, h, self.padding[0], self.padding[2]), along(1, w, self.padding[1], self.padding[3])) {
            (Some(oh), Some(ow)) => Ok([oh, ow]),
            _ => Err(Error::Shape(format!("{what}: a {:?} window does not fit a {h}x{w} input padded by {:?}", self.kernel, self.padding))),
        }
    }
}

/// A convolution or transposed convolution with its fused post-ops.
#[derive(Debug, Clone)]
pub(crate) struct ConvLayer {
    pub(crate) x: ValueId,
    pub(crate) window: Window,
    pub(crate) groups: usize,
    /// `Some(output_padding)` for a transposed convolution (ONNX `ConvTranspose`).
    pub(crate) transposed: Option<[usize; 2]>,
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    /// Added to the output before the ReLU (oneDNN's sum post-op): a residual connection.
    pub(crate) residual: Option<ValueId>,
    pub(crate) relu: bool,
}

/// One recorded layer.
#[derive(Debug, Clone)]
pub(crate) enum Layer {
    Conv(ConvLayer),
    MaxPool { x: ValueId, window: Window },
    GlobalAveragePool { x: ValueId },
    /// `y = W·flatten(x) + b`, `W` as `[outputs, inputs]`, inputs = `c·h·w` of `x` in NCHW order.
    FullyConnected { x: ValueId, weight: Vec<f32>, bias: Vec<f32>, relu: bool },
}

impl Layer {
    /// The values this layer reads.
    pub(crate) fn reads(&self) -> Vec<ValueId> {
        match self {
            Layer::Conv(c) => std::iter::once(c.x).chain(c.residual).collect(),
            Layer::MaxPool { x, .. } | Layer::GlobalAveragePool { x } | Layer::FullyConnected { x, .. } => vec![*x],
        }
    }
}

/// Records a network layer by layer; every shape is checked here.
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    /// NCHW dims of each value; value 0 is the input.
    pub(crate) dims: Vec<[usize; 4]>,
    /// The layer that makes each value (`None` for the input).
    producer: Vec<Option<usize>>,
    /// Each layer and the value it makes.
    pub(crate) layers: Vec<(Layer, ValueId)>,
    multiply_adds: f64,
    /// Whether eligible 3×3 convolutions may run as Winograd layers (`winograd.rs`).
    pub(crate) winograd: bool,
}

impl NetworkBuilder {
    /// A network taking `batch` samples of `[c, h, w]` (NCHW).
    pub fn new(batch: usize, [c, h, w]: [usize; 3]) -> Result<Self> {
        if batch == 0 || c == 0 || h == 0 || w == 0 {
            return Err(Error::Shape(format!("the input must be non-empty, got [{batch}, {c}, {h}, {w}]")));
        }
        Ok(Self { dims: vec![[batch, c, h, w]], producer: vec![None], layers: Vec::new(), multiply_adds: 0.0, winograd: true })
    }

    /// The network's input.
    pub fn input(&self) -> ValueId {
        ValueId(0)
    }

    /// The NCHW dims of `value`.
    pub fn dims(&self, value: ValueId) -> Result<[usize; 4]> {
        self.dims.get(value.0).copied().ok_or_else(|| Error::Shape(format!("value {} does not exist", value.0)))
    }

    /// Multiply-adds per run of the layers recorded so far (the convolutions and the
    /// fully-connected layer; pooling is not counted).
    pub fn multiply_adds(&self) -> f64 {
        self.multiply_adds
    }

    fn push(&mut self, layer: Layer, dims: [usize; 4], multiply_adds: f64) -> ValueId {
        let id = ValueId(self.dims.len());
        self.dims.push(dims);
        self.producer.push(Some(self.layers.len()));
        self.layers.push((layer, id));
        self.multiply_adds += multiply_adds;
        id
    }

    fn check_len(what: &str, got: usize, expected: usize) -> Result<()> {
        if got == expected { Ok(()) } else { Err(Error::Shape(format!("{what} has {got} values, expected {expected}"))) }
    }

    /// A convolution of `x` (weight `[out_channels, c/groups, kh, kw]`, bias `[out_channels]`).
    pub fn convolution(&mut self, x: ValueId, window: Window, groups: usize, out_channels: usize, weight: Vec<f32>, bias: Vec<f32>) -> Result<ValueId> {
        let [n, c, h, w] = self.dims(x)?;
        if groups == 0 || out_channels == 0 || !c.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
            return Err(Error::Shape(format!("convolution: {c} input and {out_channels} output channels do not split into {groups} groups")));
        }
        let [oh, ow] = window.output("convolution", h, w)?;
        let per_output = c / groups * window.kernel[0] * window.kernel[1];
        Self::check_len("convolution weight", weight.len(), out_channels * per_output)?;
        Self::check_len("convolution bias", bias.len(), out_channels)?;
        let layer = Layer::Conv(ConvLayer { x, window, groups, transposed: None, weight, bias, residual: None, relu: false });
        Ok(self.push(layer, [n, out_channels, oh, ow], (n * out_channels * oh * ow * per_output) as f64))
    }

    /// A transposed convolution of `x` (ONNX `ConvTranspose`: weight `[c, out_channels/groups,
    /// kh, kw]`, `output_padding` added at the bottom and right, at most the padding there).
    pub fn deconvolution(&mut self, x: ValueId, window: Window, output_padding: [usize; 2], groups: usize, out_channels: usize, weight: Vec<f32>, bias: Vec<f32>) -> Result<ValueId> {
        let [n, c, h, w] = self.dims(x)?;
        window.check("transposed convolution")?;
        if groups == 0 || out_channels == 0 || !c.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
            return Err(Error::Shape(format!("transposed convolution: {c} input and {out_channels} output channels do not split into {groups} groups")));
        }
        if output_padding[0] > window.padding[2] || output_padding[1] > window.padding[3] {
            return Err(Error::Shape(format!("transposed convolution: an output_padding {output_padding:?} beyond the bottom/right padding {:?} is not supported", [window.padding[2], window.padding[3]])));
        }
        let along = |a: usize, size: usize, before: usize, after: usize| {
            ((size - 1) * window.stride[a] + window.extent(a) + output_padding[a]).checked_sub(before + after).filter(|&o| o > 0)
        };
        let (Some(oh), Some(ow)) = (along(0, h, window.padding[0], window.padding[2]), along(1, w, window.padding[1], window.padding[3])) else {
            return Err(Error::Shape(format!("transposed convolution: padding {:?} leaves no output of a {h}x{w} input", window.padding)));
        };
        let per_input = out_channels / groups * window.kernel[0] * window.kernel[1];
        Self::check_len("transposed convolution weight", weight.len(), c * per_input)?;
        Self::check_len("transposed convolution bias", bias.len(), out_channels)?;
        let layer = Layer::Conv(ConvLayer { x, window, groups, transposed: Some(output_padding), weight, bias, residual: None, relu: false });
        Ok(self.push(layer, [n, out_channels, oh, ow], (n * c * h * w * per_input) as f64))
    }

    /// Max pooling of `x` (padding never wins: it counts as minus infinity).
    pub fn max_pool(&mut self, x: ValueId, window: Window) -> Result<ValueId> {
        let [n, c, h, w] = self.dims(x)?;
        let [oh, ow] = window.output("max pooling", h, w)?;
        Ok(self.push(Layer::MaxPool { x, window }, [n, c, oh, ow], 0.0))
    }

    /// The mean of each channel of `x`: `[n, c, 1, 1]`.
    pub fn global_average_pool(&mut self, x: ValueId) -> Result<ValueId> {
        let [n, c, _, _] = self.dims(x)?;
        Ok(self.push(Layer::GlobalAveragePool { x }, [n, c, 1, 1], 0.0))
    }

    /// `y = W·flatten(x) + b` with `W` as `[outputs, c·h·w]` (row-major): `[n, outputs, 1, 1]`.
    pub fn fully_connected(&mut self, x: ValueId, outputs: usize, weight: Vec<f32>, bias: Vec<f32>) -> Result<ValueId> {
        let [n, c, h, w] = self.dims(x)?;
        if outputs == 0 {
            return Err(Error::Shape("fully-connected: no outputs".into()));
        }
        Self::check_len("fully-connected weight", weight.len(), outputs * c * h * w)?;
        Self::check_len("fully-connected bias", bias.len(), outputs)?;
        Ok(self.push(Layer::FullyConnected { x, weight, bias, relu: false }, [n, outputs, 1, 1], (n * outputs * c * h * w) as f64))
    }

    /// Whether the plan may run 3×3 stride-1 convolutions as Winograd layers (on by default):
    /// F(4×4, 3×3) or F(2×2, 3×3) where the host has AVX2, oneDNN keeps the layer's activations
    /// in `nChw8c` and the layer is large enough (`winograd.rs`). Off, every convolution is
    /// oneDNN's direct one. Winograd rounds differently (within about 1e-5 of the output's
    /// scale per layer).
    pub fn set_winograd(&mut self, allowed: bool) -> &mut Self {
        self.winograd = allowed;
        self
    }

    /// Plans the layers up to `output` as oneDNN primitives that run on `threads` OpenMP
    /// threads (1: the calling thread alone); [`crate::Error::NotLinked`] in a build without
    /// oneDNN.
    pub fn build(self, output: ValueId, threads: usize) -> Result<crate::Network> {
        self.dims(output)?;
        crate::Network::plan(self, output, threads)
    }

    fn produced_by(&mut self, value: ValueId) -> Option<&mut Layer> {
        let index = (*self.producer.get(value.0)?)?;
        self.layers.get_mut(index).map(|(layer, _)| layer)
    }

    /// Fuses a ReLU into the layer that made `value` (a convolution or the fully-connected
    /// layer without one). The caller makes sure nothing else reads `value` before the ReLU.
    /// `false` where it cannot fuse; nothing changes then.
    pub fn fuse_relu(&mut self, value: ValueId) -> bool {
        match self.produced_by(value) {
            Some(Layer::Conv(conv)) if !conv.relu => conv.relu = true,
            Some(Layer::FullyConnected { relu, .. }) if !*relu => *relu = true,
            _ => return false,
        }
        true
    }

    /// Folds `y = scale·x + shift` per channel (an inference BatchNorm) into the convolution that
    /// made `value`, if it has no residual sum or ReLU yet. The caller makes sure nothing else
    /// reads `value`. `false` where it cannot fold; nothing changes then.
    pub fn fold_affine(&mut self, value: ValueId, scale: &[f32], shift: &[f32]) -> bool {
        let channels = match self.dims(value) {
            Ok([_, c, _, _]) => c,
            Err(_) => return false,
        };
        if scale.len() != channels || shift.len() != channels {
            return false;
        }
        let Some(Layer::Conv(conv)) = self.produced_by(value) else { return false };
        if conv.residual.is_some() || conv.relu {
            return false;
        }
        match conv.transposed {
            // [O, C/g, kh, kw]: each output channel's weights are one run.
            None => {
                let run = conv.weight.len() / channels;
                for (o, weights) in conv.weight.chunks_exact_mut(run).enumerate() {
                    weights.iter_mut().for_each(|v| *v *= scale[o]);
                }
            }
            // [C, O/g, kh, kw]: output channel g·(O/g) + o of input channel i's group g.
            Some(_) => {
                let out_per_group = channels / conv.groups;
                let taps = conv.window.kernel[0] * conv.window.kernel[1];
                let in_per_group = conv.weight.len() / (out_per_group * taps) / conv.groups;
                for (i, per_input) in conv.weight.chunks_exact_mut(out_per_group * taps).enumerate() {
                    let group = i / in_per_group;
                    for (o, weights) in per_input.chunks_exact_mut(taps).enumerate() {
                        weights.iter_mut().for_each(|v| *v *= scale[group * out_per_group + o]);
                    }
                }
            }
        }
        for ((b, a), s) in conv.bias.iter_mut().zip(scale).zip(shift) {
            *b = *b * a + s;
        }
        true
    }

    /// `a + b`, fused as a residual sum into the convolution that made the later of the two
    /// (the other then exists when it runs). `sole_reader[i]`: whether this Add is the only
    /// reader of operand `i`, which the chosen convolution's output must be. Refused where
    /// neither operand is such a convolution's output without post-ops.
    pub fn add(&mut self, a: ValueId, b: ValueId, sole_reader: [bool; 2]) -> Result<ValueId> {
        if self.dims(a)? != self.dims(b)? {
            return Err(Error::Shape(format!("add: operands of dims {:?} and {:?}", self.dims(a)?, self.dims(b)?)));
        }
        let made = [self.producer[a.0], self.producer[b.0]];
        let mut order = [(a, b, sole_reader[0], made[0], made[1]), (b, a, sole_reader[1], made[1], made[0])];
        if made[0] < made[1] {
            order.swap(0, 1);
        }
        for (target, other, sole, at, other_at) in order {
            // The other operand must exist when the target's layer runs.
            let Some(at) = at else { continue };
            if !sole || target == other || other_at.is_some_and(|o| o > at) {
                continue;
            }
            if let Some(Layer::Conv(conv)) = self.produced_by(target)
                && conv.residual.is_none()
                && !conv.relu
            {
                conv.residual = Some(other);
                return Ok(target);
            }
        }
        Err(Error::Shape("add: only an Add into a convolution's output that nothing else reads (a residual connection) is supported".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(k: usize, s: usize, p: usize) -> Window {
        Window { kernel: [k, k], stride: [s, s], dilation: [1, 1], padding: [p; 4] }
    }

    #[test]
    fn shapes_follow_onnx_and_bad_ones_are_refused_in_one_line() {
        let mut b = NetworkBuilder::new(1, [3, 224, 224]).unwrap();
        let x = b.input();
        let c = b.convolution(x, window(7, 2, 3), 1, 64, vec![0.0; 64 * 3 * 49], vec![0.0; 64]).unwrap();
        assert_eq!(b.dims(c).unwrap(), [1, 64, 112, 112]);
        let p = b.max_pool(c, window(3, 2, 1)).unwrap();
        assert_eq!(b.dims(p).unwrap(), [1, 64, 56, 56]);
        let mut up = window(3, 2, 1);
        up.padding = [1, 1, 1, 1];
        let d = b.deconvolution(p, up, [1, 1], 1, 8, vec![0.0; 64 * 8 * 9], vec![0.0; 8]).unwrap();
        assert_eq!(b.dims(d).unwrap(), [1, 8, 112, 112]);
        let g = b.global_average_pool(d).unwrap();
        let f = b.fully_connected(g, 10, vec![0.0; 80], vec![0.0; 10]).unwrap();
        assert_eq!(b.dims(f).unwrap(), [1, 10, 1, 1]);
        for e in [
            b.convolution(x, window(7, 2, 3), 2, 64, vec![0.0; 10], vec![0.0; 64]).unwrap_err(),
            b.convolution(x, window(300, 1, 0), 1, 4, vec![0.0; 4 * 3 * 90000], vec![0.0; 4]).unwrap_err(),
            b.deconvolution(p, window(3, 2, 0), [1, 1], 1, 8, vec![0.0; 64 * 8 * 9], vec![0.0; 8]).unwrap_err(),
            b.fully_connected(g, 10, vec![0.0; 3], vec![0.0; 10]).unwrap_err(),
        ] {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn an_add_fuses_into_the_later_convolution_and_relu_follows_it() {
        let mut b = NetworkBuilder::new(1, [4, 5, 5]).unwrap();
        let x = b.input();
        let main = b.convolution(x, window(3, 1, 1), 1, 4, vec![1.0; 4 * 4 * 9], vec![0.0; 4]).unwrap();
        let shortcut = b.convolution(x, window(1, 1, 0), 1, 4, vec![1.0; 16], vec![0.0; 4]).unwrap();
        assert!(b.fold_affine(shortcut, &[2.0; 4], &[1.0; 4]));
        let sum = b.add(main, shortcut, [true, true]).unwrap();
        assert_eq!(sum, shortcut, "the shortcut is made later, so it carries the sum");
        assert!(!b.fold_affine(sum, &[2.0; 4], &[0.0; 4]), "no BatchNorm after a sum");
        assert!(b.fuse_relu(sum));
        assert!(!b.fuse_relu(sum));
        let (Layer::Conv(conv), _) = &b.layers[1] else { panic!() };
        assert_eq!((conv.residual, conv.relu, conv.weight[0], conv.bias[0]), (Some(main), true, 2.0, 1.0));
        // The input has no producer to fuse into.
        assert!(b.add(x, x, [true, true]).is_err());
    }
}
