//! An exported ONNX graph (a half or the unsplit network, BatchNorm folded) run by one of the CPU
//! engines that take the exported graphs: oneDNN, XNNPACK or tract ([`crate::engine::Engine`]).
//! The serving sides hold these; the engine is chosen once per process, and under `--engine
//! auto` once per graph ([`crate::engine_trial`]).

use crate::engine::Engine;
use bottlenet_model::onnx::OnnxModel;
use bottlenet_runtime::{Error, Result};

/// One planned graph.
#[derive(Debug)]
pub enum ExportedGraph {
    #[cfg(feature = "onednn")]
    Onednn(crate::onednn_engine::OnednnGraph),
    #[cfg(feature = "xnnpack")]
    Xnnpack(crate::xnnpack_engine::XnnpackGraph),
    #[cfg(feature = "tract")]
    Tract(crate::tract_engine::TractGraph),
}

impl ExportedGraph {
    /// Plans `model` on `engine` (one of the exported-graph engines built into this binary).
    pub fn load(engine: Engine, model: OnnxModel) -> Result<Self> {
        match engine {
            #[cfg(feature = "onednn")]
            Engine::Onednn => crate::onednn_engine::OnednnGraph::load(model).map(Self::Onednn),
            #[cfg(feature = "xnnpack")]
            Engine::Xnnpack => crate::xnnpack_engine::XnnpackGraph::load(model).map(Self::Xnnpack),
            #[cfg(feature = "tract")]
            Engine::Tract => crate::tract_engine::TractGraph::load(model).map(Self::Tract),
            Engine::Auto => crate::engine_trial::load_fastest(model),
            other => {
                drop(model);
                Err(Error::InvalidArgument(format!("{other} does not run exported graphs in this binary")))
            }
        }
    }

    /// The engine that planned this graph (never `auto`).
    pub fn engine(&self) -> Engine {
        match self {
            #[cfg(feature = "onednn")]
            Self::Onednn(_) => Engine::Onednn,
            #[cfg(feature = "xnnpack")]
            Self::Xnnpack(_) => Engine::Xnnpack,
            #[cfg(feature = "tract")]
            Self::Tract(_) => Engine::Tract,
        }
    }

    /// The input's shape without the batch axis (for a server half: the frame's `[c', H', W']`;
    /// the engine trial's input).
    pub fn sample_shape(&self) -> &[usize] {
        match self {
            #[cfg(feature = "onednn")]
            Self::Onednn(g) => g.sample_shape(),
            #[cfg(feature = "xnnpack")]
            Self::Xnnpack(g) => g.sample_shape(),
            #[cfg(feature = "tract")]
            Self::Tract(g) => g.sample_shape(),
        }
    }

    /// Whether a run uses a thread pool (whose workers spin after it), not the calling thread.
    pub fn on_pool(&self) -> bool {
        match self {
            #[cfg(feature = "onednn")]
            Self::Onednn(g) => g.on_pool(),
            #[cfg(feature = "xnnpack")]
            Self::Xnnpack(g) => g.on_pool(),
            #[cfg(feature = "tract")]
            Self::Tract(g) => g.on_pool(),
        }
    }

    /// Runs `n` samples laid end to end in `input` (row-major `[n, sample_shape…]`): the outputs
    /// laid end to end, and their shape (`[n, …]`).
    pub fn run(&self, n: usize, input: Vec<f32>) -> Result<(Vec<usize>, Vec<f32>)> {
        match self {
            #[cfg(feature = "onednn")]
            Self::Onednn(g) => g.run(n, input),
            #[cfg(feature = "xnnpack")]
            Self::Xnnpack(g) => g.run(n, input),
            #[cfg(feature = "tract")]
            Self::Tract(g) => g.run(n, input),
        }
    }

    /// [`run`](Self::run) for graphs whose output is `[n, k]` logits: one vector per sample.
    pub fn logits(&self, n: usize, input: Vec<f32>) -> Result<Vec<Vec<f32>>> {
        let (shape, values) = self.run(n, input)?;
        let k = match shape.as_slice() {
            [rows, k] if *rows == n => *k,
            _ => return Err(Error::Model(format!("an exported graph returned shape {shape:?}, expected [{n}, classes]"))),
        };
        Ok(values.chunks(k.max(1)).map(<[f32]>::to_vec).collect())
    }
}
