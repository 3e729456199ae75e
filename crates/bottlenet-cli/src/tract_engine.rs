//! The inference engine `serve`, `infer`, `profile`, `demo` and `bench` run by default on the CPU
//! (cargo feature `tract`): each half of the bundle, BatchNorm folded, exported to ONNX in memory
//! exactly as `bottlenet export` writes it (docs/onnx.md), and run by tract, the pure-Rust ONNX
//! engine. It was measured 1.3–1.5× faster than burn flex on ResNet-50's halves and the full
//! network, with outputs within 2.3e-6 of flex's scale (docs/engines.md, `bench --only engines`).
//!
//! Invariant: a graph is planned for batch 1 (tract's optimiser packs and fuses much better for a
//! fixed shape: measured 0.6–0.9× flex with the batch axis left symbolic, docs/engines.md), and a
//! batch runs sample by sample through that one plan (one copy of the packed weights).
//!
//! Invariant: a graph of fewer than [`crate::engine::PARALLEL_MIN_FMA`] multiply-adds per sample (tract's cost
//! model) runs on the calling thread; a larger one spreads its matrix products over rayon's
//! pool. Waking the pool's other thread costs about 0.3 ms per run on this host, more than a
//! small graph gains from it: the compact network's RB1 path went from 1.84 to 1.53 ms end to
//! end over the netem veth, and cloud-only from 1.67 to 1.38 ms, on one thread (docs/engines.md).
//!
//! Training, the GPUs and `--engine burn` stay on burn; this module only runs what burn trained.
//! Which engine a command runs is [`crate::engine::Engine`].

use crate::engine::parallel_min_fma;
use bottlenet_model::onnx::OnnxModel;
use bottlenet_runtime::{Error, Result};
use std::sync::Arc;
use tract_linalg::multithread::Executor;
use tract_onnx::prelude::{DatumExt, Framework, InferenceModelExt, RunOptions, Tensor as TractTensor, TractResult, TypedModel, TypedRunnableModel, tvec};
use tract_onnx::tract_core::ops::Cost;

/// Multiply-adds of one node per run, from tract's cost model (0 where the op declares none).
pub fn node_multiply_adds(model: &TypedModel, node_id: usize) -> TractResult<f64> {
    let facts = model.node_input_facts(node_id)?;
    let costs = model.node(node_id).op.cost(&facts)?;
    Ok(costs.iter().filter(|(cost, _)| matches!(cost, Cost::FMA(_))).filter_map(|(_, count)| count.to_i64().ok()).sum::<i64>() as f64)
}

/// One exported graph, optimised and planned by tract for batch 1.
#[derive(Clone)]
pub struct TractGraph {
    plan: Arc<TypedRunnableModel>,
    /// The input's shape without the batch axis, e.g. `[3, 224, 224]`.
    sample_shape: Vec<usize>,
    /// e.g. `bottlenet-resnet50-RB1-cloud`, for errors.
    name: String,
    /// Whether the plan runs on rayon's pool (`Executor::RayonGlobal`) rather than the caller
    /// (read by the engine trial).
    on_pool: bool,
}

impl std::fmt::Debug for TractGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractGraph").field("name", &self.name).field("sample_shape", &self.sample_shape).finish()
    }
}

impl TractGraph {
    /// Parses, optimises and plans `model`, whose one input is `[batch, fixed axes…]`. Its
    /// matrix products run on rayon's global pool (the one flex and `--threads` use) when that
    /// pool has more than one thread and the graph is large enough to gain ([`crate::engine::PARALLEL_MIN_FMA`]).
    pub fn load(model: OnnxModel) -> Result<Self> {
        let name = format!(
            "{} {} graph",
            model.metadata("bottlenet.arch").unwrap_or("exported"),
            model.metadata("bottlenet.half").unwrap_or("model")
        );
        let sample_shape = match model.inputs().as_slice() {
            [input] if input.dims.first() == Some(&None) && input.dims.len() > 1 => {
                input.dims[1..].iter().map(|d| d.ok_or_else(|| Error::Model(format!("{name}: only the batch axis may be symbolic")))).collect::<Result<Vec<_>>>()?
            }
            _ => return Err(Error::Model(format!("{name}: expected one input with a symbolic batch axis"))),
        };
        // Each copy of the weights is dropped as soon as the next exists (protobuf message,
        // bytes, tract's parsed graph, its optimised plan), so loading a ResNet-50 holds at most
        // two of them at once beside burn's.
        let bytes = model.to_bytes();
        drop(model);
        let mut fixed = vec![1usize];
        fixed.extend_from_slice(&sample_shape);
        let failed = |e: tract_onnx::prelude::TractError| Error::Model(format!("tract could not load the exported graph {name}: {e:#}"));
        let parsed = tract_onnx::onnx().model_for_read(&mut bytes.as_slice()).map_err(failed)?;
        drop(bytes);
        let mut typed = parsed.with_input_fact(0, f32::fact(&fixed).into()).and_then(|m| m.into_typed()).and_then(|m| m.into_decluttered()).map_err(failed)?;
        let separable_pools = crate::tract_pool::replace_max_pools(&mut typed).map_err(failed)?;
        let optimized = typed.into_optimized().map_err(failed)?;
        let multiply_adds = (0..optimized.nodes().len()).map(|id| node_multiply_adds(&optimized, id)).sum::<TractResult<f64>>().map_err(failed)?;
        let on_pool = rayon::current_num_threads() > 1 && multiply_adds >= parallel_min_fma()?;
        let executor = if on_pool { Executor::RayonGlobal } else { Executor::SingleThread };
        tracing::debug!(graph = %name, mfma = multiply_adds / 1e6, ?executor, separable_pools, "tract plan");
        let options = RunOptions { executor: Some(executor), ..RunOptions::default() };
        let plan = optimized.into_runnable_with_options(&options).map_err(failed)?;
        let graph = Self {
            plan,
            sample_shape,
            name,
            on_pool,
        };
        // One run on zeros now, so the first real request does not pay the plan's first-run
        // allocations (measured as a slow server, it would move `--split auto`'s choice).
        let per_sample: usize = graph.sample_shape.iter().product();
        graph.run(1, vec![0.0; per_sample])?;
        Ok(graph)
    }

    /// tract's plan, for tools that look inside it (`bench --only tract-ops` times its nodes; the
    /// phone and server builds have no bench).
    #[cfg(feature = "full")]
    pub fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.plan
    }

    /// The input's shape without the batch axis (for a server half: the frame's `[c', H', W']`).
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Whether a run uses a thread pool (whose workers spin after it), not the calling thread.
    pub fn on_pool(&self) -> bool {
        self.on_pool
    }

    /// Runs `n` samples laid end to end in `input` (row-major `[n, sample_shape…]`), one at a
    /// time through the batch-1 plan: the outputs laid end to end, and their shape (`[n, …]`).
    pub fn run(&self, n: usize, input: Vec<f32>) -> Result<(Vec<usize>, Vec<f32>)> {
        let per_sample: usize = self.sample_shape.iter().product();
        if n == 0 || input.len() != n * per_sample {
            return Err(Error::InvalidArgument(format!("{} takes [{n}, {:?}] inputs, got {} values", self.name, self.sample_shape, input.len())));
        }
        let mut shape = vec![1usize];
        shape.extend_from_slice(&self.sample_shape);
        let (mut out_shape, mut values) = (Vec::new(), Vec::new());
        for sample in input.chunks(per_sample) {
            let tensor = TractTensor::from_shape(&shape, sample).map_err(|e| Error::Model(format!("building {}'s input: {e:#}", self.name)))?;
            let outputs = self.plan.run(tvec!(tensor.into())).map_err(|e| Error::Model(format!("tract failed to run {}: {e:#}", self.name)))?;
            let first = outputs.first().ok_or_else(|| Error::Model(format!("{} returned no output", self.name)))?;
            let view = first.to_plain_array_view::<f32>().map_err(|e| Error::Model(format!("reading {}'s output: {e:#}", self.name)))?;
            values.extend(view.iter().copied());
            out_shape = first.shape().to_vec();
        }
        if let Some(batch) = out_shape.first_mut() {
            *batch = n;
        }
        Ok((out_shape, values))
    }
}
