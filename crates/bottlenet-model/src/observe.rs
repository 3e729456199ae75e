//! Per-operation hooks into the forward passes, for profiles of where inference time goes
//! (issue 13: "know where the time goes").
//!
//! Every forward pass of the backbone and the bottleneck unit runs its operations through an
//! [`OpObserver`]. The plain `forward` methods pass [`Unobserved`], whose hook is the operation
//! itself and compiles away; `bottlenet bench --only ops` passes a timer instead. There is one
//! forward per module, so a profile always measures the code that serves.
//!
//! A timing observer is exact only on an eager backend (flex): a GPU backend queues work, and
//! each closure would time the launch, not the kernel.

use burn::nn::conv::Conv2d;
use std::fmt;

/// One kind of operation, at the granularity a profile reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// A convolution with a `kernel`×`kernel` window (1×1, 3×3, the stem's 7×7).
    Conv { kernel: usize, stride: usize },
    /// The restoration unit's transposed convolution.
    ConvTranspose,
    /// Inference BatchNorm with running statistics (absent once folded, see `fold`).
    BatchNorm,
    Relu,
    /// The residual block's shortcut addition.
    ResidualAdd,
    MaxPool,
    /// The global average pool before `fc`.
    GlobalPool,
    Linear,
}

impl Op {
    pub fn conv(conv: &Conv2d) -> Self {
        Op::Conv { kernel: conv.kernel_size[0], stride: conv.stride[0] }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Conv { kernel, stride: 1 } => write!(f, "conv {kernel}x{kernel}"),
            Op::Conv { kernel, stride } => write!(f, "conv {kernel}x{kernel} /{stride}"),
            Op::ConvTranspose => f.write_str("conv-transpose"),
            Op::BatchNorm => f.write_str("batch-norm"),
            Op::Relu => f.write_str("relu"),
            Op::ResidualAdd => f.write_str("residual add"),
            Op::MaxPool => f.write_str("max-pool"),
            Op::GlobalPool => f.write_str("global avg-pool"),
            Op::Linear => f.write_str("linear (fc)"),
        }
    }
}

/// Sees every operation of a forward pass; `run` is the operation and must be called once.
pub trait OpObserver {
    fn op<T>(&mut self, op: Op, run: impl FnOnce() -> T) -> T;
}

/// The observer of the plain `forward` methods: runs each operation and nothing else.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl OpObserver for Unobserved {
    #[inline(always)]
    fn op<T>(&mut self, _op: Op, run: impl FnOnce() -> T) -> T {
        run()
    }
}
