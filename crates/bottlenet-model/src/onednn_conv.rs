//! The 2-D convolutions of every backbone and bottleneck layer on oneDNN (crate
//! `bottlenet-onednn`, Debian's `libdnnl-dev`) when their tensors live on burn's flex CPU
//! backend: the forward pass, and under autodiff both gradients (input and weight, bias),
//! which are most of a training step's time on flex (docs/engines.md, "Where the training
//! step's time goes"). Elsewhere — a GPU device, a build without oneDNN, a padding oneDNN is
//! not given here, or [`ConvKernels::Burn`] chosen — the layer runs burn's own `conv2d`.
//!
//! Invariant: on every path the layer computes `Conv2d::forward` exactly (same weights, same
//! padding, stride, dilation and groups), so a model trained with either kernel loads and
//! answers the same; the tests compare outputs and gradients within 1e-4 of scale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use burn::backend::Flex;
use burn::backend::tensor::FloatTensor;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use bottlenet_onednn::{Conv2dKernels, Conv2dShape};

use crate::flex_buffers::{f32s, flex};

/// Which kernels run the convolutions on flex (`train --conv-kernels`, `bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernels {
    /// oneDNN's, where this build linked it (the default then).
    OneDnn,
    /// burn flex's own.
    Burn,
}

impl ConvKernels {
    /// oneDNN where linked, else burn.
    pub fn default_for_build() -> Self {
        if bottlenet_onednn::linked() { ConvKernels::OneDnn } else { ConvKernels::Burn }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConvKernels::OneDnn => "onednn",
            ConvKernels::Burn => "burn",
        }
    }

    /// Reads `onednn` or `burn`; refuses oneDNN in a build without it, in one line.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "onednn" if bottlenet_onednn::linked() => Ok(ConvKernels::OneDnn),
            "onednn" => Err(bottlenet_onednn::Error::NotLinked.to_string()),
            "burn" | "flex" => Ok(ConvKernels::Burn),
            other => Err(format!("unknown convolution kernels '{other}': use onednn or burn")),
        }
    }
}

/// Convolution passes (forward, input gradient, weight gradient) run on oneDNN so far, for the
/// logs and the tests (a layer that fell back to burn does not count).
static ONEDNN_PASSES: AtomicU64 = AtomicU64::new(0);

/// How many convolution passes this process has run on oneDNN.
pub fn onednn_passes() -> u64 {
    ONEDNN_PASSES.load(Ordering::Relaxed)
}

/// 0: not chosen yet (the build's default), 1: oneDNN, 2: burn.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// Chooses the kernels for every convolution on flex from now on (process-wide).
pub fn set_conv_kernels(kernels: ConvKernels) {
    CHOSEN.store(if kernels == ConvKernels::OneDnn { 1 } else { 2 }, Ordering::SeqCst);
}

/// The kernels convolutions on flex run on now.
pub fn conv_kernels() -> ConvKernels {
    match CHOSEN.load(Ordering::SeqCst) {
        1 => ConvKernels::OneDnn,
        2 => ConvKernels::Burn,
        _ => ConvKernels::default_for_build(),
    }
}

/// `conv.forward(x)`, on oneDNN where the module docs say so.
pub(crate) fn conv2d_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if conv_kernels() == ConvKernels::OneDnn
        && let Some(shape) = shape_of(conv, &x)
    {
        let bias = conv.bias.as_ref().map(|b| b.val());
        match try_onednn(x, conv.weight.val(), bias, shape) {
            Ok(y) => return y,
            Err(x) => return conv.forward(x),
        }
    }
    conv.forward(x)
}

/// The oneDNN shape of `conv` on `x`, or `None` where burn must run it (`Same` padding).
fn shape_of(conv: &Conv2d, x: &Tensor<4>) -> Option<Conv2dShape> {
    let [batch, in_channels, in_height, in_width] = x.dims();
    let [out_channels, _, _, _] = conv.weight.dims();
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
        PaddingConfig2d::Same => return None,
    };
    let shape = Conv2dShape {
        batch,
        in_channels,
        out_channels,
        in_height,
        in_width,
        kernel: conv.kernel_size,
        stride: conv.stride,
        padding,
        dilation: conv.dilation,
        groups: conv.groups,
    };
    shape.validate().ok().map(|()| shape)
}

/// Runs the convolution on oneDNN when `x` lives on flex (with or without autodiff); gives `x`
/// back otherwise.
fn try_onednn(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, shape: Conv2dShape) -> Result<Tensor<4>, Tensor<4>> {
    // Autodiff on flex: the training step.
    if let Ok(x_ad) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        let (Ok(w_ad), bias_ad) = (weight.try_into_primitive::<Autodiff<Flex>>(), bias.map(|b| b.try_into_primitive::<Autodiff<Flex>>())) else {
            return Err(x);
        };
        let bias_ad = match bias_ad {
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => return Err(x),
            None => None,
        };
        return Ok(Tensor::from_primitive::<Autodiff<Flex>>(autodiff_conv2d(x_ad, w_ad, bias_ad, shape)));
    }
    // Plain flex: evaluation, `--engine burn`.
    if let Ok(x_flex) = x.clone().try_into_primitive::<Flex>() {
        let (Ok(w), bias) = (weight.try_into_primitive::<Flex>(), bias.map(|b| b.try_into_primitive::<Flex>())) else {
            return Err(x);
        };
        let bias = match bias {
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => return Err(x),
            None => None,
        };
        return Ok(Tensor::from_primitive::<Flex>(forward(&x_flex, &w, bias.as_ref(), &shape)));
    }
    Err(x)
}

/// One oneDNN primitive set per shape, built on first use (primitive creation JIT-compiles).
/// A training run meets a handful of shapes (each layer's, at the batch size and at the last
/// partial batch); the cap keeps a run through many batch sizes from holding them all.
static KERNELS: Mutex<Option<HashMap<Conv2dShape, Conv2dKernels>>> = Mutex::new(None);
const MAX_CACHED_SHAPES: usize = 256;

fn with_kernels<T>(shape: &Conv2dShape, run: impl FnOnce(&mut Conv2dKernels) -> bottlenet_onednn::Result<T>) -> T {
    let mut cache: MutexGuard<'_, _> = KERNELS.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if cache.len() >= MAX_CACHED_SHAPES && !cache.contains_key(shape) {
        cache.clear();
    }
    let kernels = match cache.entry(*shape) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let built = Conv2dKernels::new(*shape).unwrap_or_else(|err| panic!("oneDNN refused a convolution burn accepts ({shape:?}): {err}"));
            e.insert(built)
        }
    };
    ONEDNN_PASSES.fetch_add(1, Ordering::Relaxed);
    // The shape was validated and every buffer is sized from it: a failure here is a oneDNN
    // fault, not bad input.
    run(kernels).unwrap_or_else(|err| panic!("oneDNN convolution failed ({shape:?}): {err}"))
}

fn output_dims(shape: &Conv2dShape) -> Vec<usize> {
    // `shape_of` validated the shape, so it has an output.
    let [oh, ow] = shape.output_hw().unwrap_or([0, 0]);
    vec![shape.batch, shape.out_channels, oh, ow]
}

fn forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>, shape: &Conv2dShape) -> FlexTensor {
    let (x, weight) = (f32s(x), f32s(weight));
    let bias = bias.map(f32s);
    let dims = output_dims(shape);
    let mut out = vec![0.0; dims.iter().product()];
    with_kernels(shape, |k| k.forward(&x, &weight, bias.as_deref(), &mut out));
    flex(out, dims)
}

/// The backward step: the input's and the weight's (and bias's) gradients from oneDNN.
#[derive(Debug)]
struct OneDnnConv2d;

/// Checkpointed input and weight, whether a bias took part, and the shape.
type ConvState = (NodeId, NodeId, bool, Conv2dShape);

impl Backward<Flex, 3> for OneDnnConv2d {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, _, shape) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        let grad_out = f32s(&grad);
        if let Some(node) = node_x {
            let dims = vec![shape.batch, shape.in_channels, shape.in_height, shape.in_width];
            let mut grad_in = vec![0.0; dims.iter().product()];
            let weight = f32s(&weight);
            with_kernels(&shape, |k| k.backward_data(&grad_out, &weight, &mut grad_in));
            grads.register::<Flex>(node.id, flex(grad_in, dims));
        }
        if node_weight.is_some() || node_bias.is_some() {
            let dims = weight.layout().shape().to_vec();
            let mut grad_weight = vec![0.0; dims.iter().product()];
            let mut grad_bias = node_bias.as_ref().map(|_| vec![0.0; shape.out_channels]);
            let x = f32s(&x);
            with_kernels(&shape, |k| k.backward_weights(&x, &grad_out, &mut grad_weight, grad_bias.as_deref_mut()));
            if let Some(node) = node_weight {
                grads.register::<Flex>(node.id, flex(grad_weight, dims));
            }
            if let (Some(node), Some(grad_bias)) = (node_bias, grad_bias) {
                grads.register::<Flex>(node.id, flex(grad_bias, vec![shape.out_channels]));
            }
        }
    }
}

/// The no-bias layers (every backbone convolution before its BatchNorm).
#[derive(Debug)]
struct OneDnnConv2dNoBias;

impl Backward<Flex, 2> for OneDnnConv2dNoBias {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        OneDnnConv2d.backward(Ops { parents: [node_x, node_weight, None], node: ops.node, state: ops.state }, grads, checkpointer);
    }
}

fn autodiff_conv2d(
    x: FloatTensor<Autodiff<Flex>>,
    weight: FloatTensor<Autodiff<Flex>>,
    bias: Option<FloatTensor<Autodiff<Flex>>>,
    shape: Conv2dShape,
) -> FloatTensor<Autodiff<Flex>> {
    let y = forward(x.primitive(), weight.primitive(), bias.as_ref().map(|b| b.primitive()), &shape);
    match bias {
        Some(bias) => match OneDnnConv2d.prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), true, shape);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        },
        None => match OneDnnConv2dNoBias.prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), false, shape);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        },
    }
}

#[cfg(test)]
mod tests;
