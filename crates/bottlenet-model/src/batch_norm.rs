//! Training-mode BatchNorm, and BatchNorm followed by ReLU, as one operation each on burn's
//! flex CPU backend under autodiff: our own two-pass forward and two-pass backward
//! ([`kernels`]) registered as one autodiff step, where burn composes the same op out of about
//! twenty element-wise passes and transposing copies (most of what was left of a training step
//! once oneDNN ran its convolutions: docs/engines.md). Elsewhere — inference (running
//! statistics), a GPU device, a frozen layer, or [`NormKernels::Burn`] chosen — the layer runs
//! burn's `BatchNorm::forward` (then burn's `relu`).
//!
//! Invariant: on every path the output, the gradients of the input, `γ` and `β`, and the update
//! of the running statistics (`running ← (1 − momentum)·running + momentum·batch`, biased
//! variance, as burn's `BatchNorm::forward_train`) are those of burn's layer, so a model trained
//! with either kernel loads and answers the same. The tests hold ours within 1e-4 of scale of the
//! definitions computed in f64, and burn's f32 layer within 5e-3 of ours (its reductions drift).

mod kernels;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use burn::backend::Flex;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;

use crate::flex_buffers::{f32s, flex};
use kernels::{ChannelStats, Layout};

/// Which kernels run training BatchNorm on flex (`--norm-kernels`, `bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKernels {
    /// This module's fused forward and backward (the default).
    Fused,
    /// burn's composition of element-wise operations.
    Burn,
}

impl NormKernels {
    pub fn name(self) -> &'static str {
        match self {
            NormKernels::Fused => "fused",
            NormKernels::Burn => "burn",
        }
    }

    /// Reads `fused` or `burn`, refusing anything else in one line.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "fused" => Ok(NormKernels::Fused),
            "burn" | "flex" => Ok(NormKernels::Burn),
            other => Err(format!("unknown BatchNorm kernels '{other}': use fused or burn")),
        }
    }
}

/// 0: not chosen (fused), 2: burn.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// Chooses the kernels for every training BatchNorm on flex from now on (process-wide).
pub fn set_norm_kernels(kernels: NormKernels) {
    CHOSEN.store(if kernels == NormKernels::Burn { 2 } else { 1 }, Ordering::SeqCst);
}

/// The kernels training BatchNorm on flex runs on now.
pub fn norm_kernels() -> NormKernels {
    if CHOSEN.load(Ordering::SeqCst) == 2 { NormKernels::Burn } else { NormKernels::Fused }
}

/// Fused BatchNorm passes (forward or backward) run so far, for the logs and the tests (a
/// layer that fell back to burn does not count).
static FUSED_PASSES: AtomicU64 = AtomicU64::new(0);

/// How many BatchNorm passes this process has run on the fused kernels.
pub fn fused_norm_passes() -> u64 {
    FUSED_PASSES.load(Ordering::Relaxed)
}

/// `bn.forward(x)`, then `relu` when `then_relu`; fused where the module docs say so.
pub(crate) fn forward(bn: &BatchNorm, x: Tensor<4>, then_relu: bool) -> Tensor<4> {
    let x = if norm_kernels() == NormKernels::Fused && bn.training.is_enabled() {
        match try_fused(bn, x, then_relu) {
            Ok(y) => return y,
            Err(x) => x,
        }
    } else {
        x
    };
    let y = bn.forward(x);
    if then_relu { relu(y) } else { y }
}

/// The fused training op when `x` lives on flex under autodiff; gives `x` back otherwise.
fn try_fused(bn: &BatchNorm, x: Tensor<4>, then_relu: bool) -> Result<Tensor<4>, Tensor<4>> {
    let device = x.device();
    let Ok(x_ad) = x.clone().try_into_primitive::<Autodiff<Flex>>() else {
        return Err(x);
    };
    let (Ok(gamma), Ok(beta)) = (bn.gamma.val().try_into_primitive::<Autodiff<Flex>>(), bn.beta.val().try_into_primitive::<Autodiff<Flex>>()) else {
        return Err(x);
    };
    let [batch, channels, height, width] = x.dims();
    let layout = Layout { batch, channels, plane: height * width };
    let (y, stats) = fused(x_ad, gamma, beta, bn.epsilon, then_relu, layout);

    // The running statistics, as burn's forward_train updates them.
    let per_channel = |f: fn(&ChannelStats) -> f64| Tensor::<1>::from_data(TensorData::new(stats.iter().map(|s| f(s) as f32).collect::<Vec<f32>>(), [channels]), &device);
    let momentum = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device).mul_scalar(1.0 - momentum).add(per_channel(|s| s.mean).mul_scalar(momentum));
    let running_var = bn.running_var.value_sync().to_device(&device).mul_scalar(1.0 - momentum).add(per_channel(|s| s.variance).mul_scalar(momentum));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    Ok(Tensor::from_primitive::<Autodiff<Flex>>(y))
}

/// The backward step of the fused op.
#[derive(Debug)]
struct FusedBatchNorm;

/// The checkpointed input, `γ` and `β` as the forward read them, its statistics, whether ReLU
/// followed, the layout and the input's dimensions.
type NormState = (NodeId, Vec<f32>, Vec<f32>, Vec<ChannelStats>, bool, Layout, Vec<usize>);

impl Backward<Flex, 3> for FusedBatchNorm {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, gamma, beta, stats, then_relu, layout, dims) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let (x, grad) = (f32s(&x), f32s(&grad));
        FUSED_PASSES.fetch_add(1, Ordering::Relaxed);
        let g = kernels::backward(&x, &grad, &gamma, &beta, &stats, then_relu, layout, node_x.is_some());
        if let (Some(node), Some(grad_x)) = (node_x, g.x) {
            grads.register::<Flex>(node.id, flex(grad_x, dims));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex(g.gamma, vec![layout.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex(g.beta, vec![layout.channels]));
        }
    }
}

fn fused(
    x: FloatTensor<Autodiff<Flex>>,
    gamma: FloatTensor<Autodiff<Flex>>,
    beta: FloatTensor<Autodiff<Flex>>,
    epsilon: f64,
    then_relu: bool,
    layout: Layout,
) -> (FloatTensor<Autodiff<Flex>>, Vec<ChannelStats>) {
    let dims = x.primitive().layout().shape().to_vec();
    let (gamma_values, beta_values) = (f32s(gamma.primitive()).into_owned(), f32s(beta.primitive()).into_owned());
    let mut y = vec![0.0; layout.len()];
    FUSED_PASSES.fetch_add(1, Ordering::Relaxed);
    let stats = kernels::forward(&f32s(x.primitive()), &gamma_values, &beta_values, epsilon, then_relu, layout, &mut y);
    let y = flex(y, dims.clone());
    let out = match FusedBatchNorm.prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), gamma_values, beta_values, stats.clone(), then_relu, layout, dims);
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (out, stats)
}

#[cfg(test)]
mod tests;
