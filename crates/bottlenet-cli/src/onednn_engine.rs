//! oneDNN as an inference engine on the CPU (cargo feature `onednn`, crate `bottlenet-onednn`,
//! Debian's libdnnl-dev): each half of the bundle, BatchNorm folded and exported to ONNX in
//! memory exactly as `bottlenet export` writes it (docs/onnx.md), rebuilt as oneDNN primitives
//! that keep their activations in the blocked formats they choose (`nChw8c` with AVX2), with
//! every ReLU and residual sum fused into the convolution before it and the weights reordered
//! once (docs/engines.md, "oneDNN as an inference engine").
//!
//! Invariants:
//! * the graph's input and output stay NCHW (what the codec and the exporter use); the network
//!   reorders at its two ends only;
//! * a ReLU fuses into the layer before it, and an Add into the later-made convolution of its
//!   two operands, only where that operand has no other reader; a graph that needs anything
//!   else (a ReLU on its own, say) is refused in one line, and `auto` leaves it to another engine;
//! * the network is planned for batch 1 and a batch runs sample by sample through it, under a
//!   lock (one scratchpad), so concurrent requests to one half take turns;
//! * a graph of fewer than [`crate::engine::PARALLEL_MIN_FMA`] multiply-adds per sample runs on the
//!   calling thread, a larger one on `--threads` OpenMP threads;
//! * large 3×3 stride-1 convolutions run as Winograd layers on AVX2 hosts (`bottlenet-onednn`'s
//!   `winograd.rs`, their tiles split over the OpenMP team) unless
//!   [`crate::engine::WINOGRAD_ENV`] is `off`.

use crate::engine::{parallel_min_fma, winograd_allowed};
use crate::onnx_nodes::{GraphEnds, graph_ends, Weight, attribute, batch_norm_affine, groups, ints, readers, weight};
use bottlenet_model::onnx::OnnxModel;
use bottlenet_model::onnx::proto::{NodeProto, TensorProto};
use bottlenet_onednn::{Network, NetworkBuilder, ValueId, Window};
use bottlenet_runtime::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;

/// One exported graph as a oneDNN network.
#[derive(Debug)]
pub struct OnednnGraph {
    network: Mutex<Network>,
    /// The input's shape without the batch axis, NCHW, e.g. `[3, 224, 224]`.
    sample_shape: Vec<usize>,
    /// The output's shape without the batch axis (`[classes]` for logits, else `[C, H, W]`).
    output_shape: Vec<usize>,
    /// e.g. `resnet50 cloud graph`, for errors.
    name: String,
}

/// One value of the graph as the builder holds it.
#[derive(Clone, Copy, Debug)]
struct Value {
    id: ValueId,
    /// After `Flatten` (a no-op in NCHW: only a fully-connected layer may read it).
    flat: bool,
}

/// Why `graph`'s `node` cannot run here, in one line.
fn refusal(graph: &str, node: &NodeProto, why: &str) -> Error {
    Error::Model(format!("the onednn engine cannot run {graph}'s {} node {:?}: {why}; pass --engine xnnpack or --engine tract", node.op_type, node.name))
}

/// Walks an exported graph's nodes into a [`NetworkBuilder`].
struct Translation<'a> {
    name: &'a str,
    builder: NetworkBuilder,
    values: HashMap<String, Value>,
    weights: HashMap<&'a str, &'a TensorProto>,
    /// How many nodes (and graph outputs) read each value.
    readers: HashMap<&'a str, usize>,
}

impl<'a> Translation<'a> {
    fn refuse(&self, node: &NodeProto, why: &str) -> Error {
        refusal(self.name, node, why)
    }

    fn value(&self, node: &NodeProto, index: usize) -> Result<Value> {
        let name = node.input.get(index).ok_or_else(|| self.refuse(node, &format!("input {index} is missing")))?;
        self.values.get(name).copied().ok_or_else(|| self.refuse(node, &format!("its input {name:?} is not a value made earlier")))
    }

    /// Input `index` as a spatial (not flattened) value, and its NCHW dims.
    fn spatial(&self, node: &NodeProto, index: usize) -> Result<(Value, [usize; 4])> {
        let value = self.value(node, index)?;
        if value.flat {
            return Err(self.refuse(node, "its input was flattened"));
        }
        let dims = self.builder.dims(value.id).map_err(|e| self.refuse(node, &e.to_string()))?;
        Ok((value, dims))
    }

    fn only_reader(&self, node: &NodeProto, index: usize) -> bool {
        node.input.get(index).is_some_and(|name| self.readers.get(name.as_str()) == Some(&1))
    }

    fn weight(&self, node: &NodeProto, index: usize) -> Result<Option<Weight>> {
        match node.input.get(index).filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(name) => {
                let tensor = self.weights.get(name.as_str()).ok_or_else(|| self.refuse(node, &format!("{name:?} is not an initializer")))?;
                weight(tensor).map(Some)
            }
        }
    }

    fn bias(&self, node: &NodeProto, index: usize, len: usize) -> Result<Vec<f32>> {
        match self.weight(node, index)? {
            None => Ok(vec![0.0; len]),
            Some(b) if b.values.len() == len => Ok(b.values),
            Some(b) => Err(self.refuse(node, &format!("its bias has {} values for {len} outputs", b.values.len()))),
        }
    }

    /// Kernel, strides, dilations and `pads` (ONNX `[top, left, bottom, right]`) of a 2-D node.
    fn window(&self, node: &NodeProto, kernel: [usize; 2]) -> Result<Window> {
        let pair = |name: &str, default: [usize; 2]| -> Result<[usize; 2]> {
            match ints(node, name) {
                None => Ok(default),
                Some(v) if v.len() == 2 => Ok([v[0], v[1]]),
                Some(v) => Err(self.refuse(node, &format!("{name} {v:?} is not 2-D"))),
            }
        };
        let pads = ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
        let [top, left, bottom, right] = pads[..] else { return Err(self.refuse(node, &format!("pads {pads:?} is not 2-D"))) };
        if attribute(node, "auto_pad").is_some() {
            return Err(self.refuse(node, "auto_pad is not supported (the exporter writes explicit pads)"));
        }
        Ok(Window { kernel: pair("kernel_shape", kernel)?, stride: pair("strides", [1, 1])?, dilation: pair("dilations", [1, 1])?, padding: [top, left, bottom, right] })
    }

    fn node(&mut self, node: &NodeProto) -> Result<Value> {
        let graph = self.name;
        let invalid = move |e: bottlenet_onednn::Error| refusal(graph, node, &e.to_string());
        let made = match node.op_type.as_str() {
            "Conv" => {
                let (x, [_, c, _, _]) = self.spatial(node, 0)?;
                let w = self.weight(node, 1)?.ok_or_else(|| self.refuse(node, "it has no weight"))?;
                let [o, i, kh, kw] = w.dims[..] else { return Err(self.refuse(node, "its weight is not 4-D")) };
                let window = self.window(node, [kh, kw])?;
                let groups = groups(node);
                if i * groups != c || window.kernel != [kh, kw] {
                    return Err(self.refuse(node, &format!("a {:?} weight does not fit {c} input channels in {groups} groups", w.dims)));
                }
                let bias = self.bias(node, 2, o)?;
                self.builder.convolution(x.id, window, groups, o, w.values, bias).map_err(invalid)?
            }
            "ConvTranspose" => {
                let (x, [_, c, _, _]) = self.spatial(node, 0)?;
                let w = self.weight(node, 1)?.ok_or_else(|| self.refuse(node, "it has no weight"))?;
                let [c_in, og, kh, kw] = w.dims[..] else { return Err(self.refuse(node, "its weight is not 4-D")) };
                let window = self.window(node, [kh, kw])?;
                let groups = groups(node);
                if c_in != c || window.kernel != [kh, kw] || attribute(node, "output_shape").is_some() {
                    return Err(self.refuse(node, &format!("a {:?} weight (or an output_shape) does not fit {c} input channels", w.dims)));
                }
                let output_padding = match ints(node, "output_padding").as_deref() {
                    None => [0, 0],
                    Some(&[a, b]) => [a, b],
                    Some(other) => return Err(self.refuse(node, &format!("output_padding {other:?} is not 2-D"))),
                };
                let bias = self.bias(node, 2, og * groups)?;
                self.builder.deconvolution(x.id, window, output_padding, groups, og * groups, w.values, bias).map_err(invalid)?
            }
            "MaxPool" => {
                let (x, _) = self.spatial(node, 0)?;
                if attribute(node, "ceil_mode").is_some_and(|a| a.i != 0) || attribute(node, "storage_order").is_some_and(|a| a.i != 0) || node.output.len() > 1 {
                    return Err(self.refuse(node, "only floor mode without indices is supported"));
                }
                let kernel = match ints(node, "kernel_shape").as_deref() {
                    Some(&[a, b]) => [a, b],
                    _ => return Err(self.refuse(node, "kernel_shape is not 2-D")),
                };
                let window = self.window(node, kernel)?;
                self.builder.max_pool(x.id, window).map_err(invalid)?
            }
            "Relu" => {
                let x = self.value(node, 0)?;
                if self.only_reader(node, 0) && self.builder.fuse_relu(x.id) {
                    return Ok(x);
                }
                return Err(self.refuse(node, "only a ReLU right after a convolution, a residual sum or a fully-connected layer (its one reader) fuses"));
            }
            "Add" => {
                let (a, b) = (self.value(node, 0)?, self.value(node, 1)?);
                if a.flat || b.flat {
                    return Err(self.refuse(node, "an operand is flattened"));
                }
                let sole = [self.only_reader(node, 0), self.only_reader(node, 1)];
                self.builder.add(a.id, b.id, sole).map_err(invalid)?
            }
            "GlobalAveragePool" => {
                let (x, _) = self.spatial(node, 0)?;
                self.builder.global_average_pool(x.id).map_err(invalid)?
            }
            "Flatten" => {
                let x = self.value(node, 0)?;
                if attribute(node, "axis").is_some_and(|a| a.i != 1) {
                    return Err(self.refuse(node, "only axis 1 is supported"));
                }
                return Ok(Value { id: x.id, flat: true });
            }
            "Gemm" => {
                let x = self.value(node, 0)?;
                let [_, c, h, w] = self.builder.dims(x.id).map_err(invalid)?;
                let float = |name: &str| attribute(node, name).map_or(1.0, |a| a.f);
                let int = |name: &str| attribute(node, name).map_or(0, |a| a.i);
                if !x.flat || float("alpha") != 1.0 || float("beta") != 1.0 || int("transA") != 0 {
                    return Err(self.refuse(node, "only y = x·B + C on a flattened input is supported"));
                }
                let b = self.weight(node, 1)?.ok_or_else(|| self.refuse(node, "it has no B"))?;
                let [rows, cols] = b.dims[..] else { return Err(self.refuse(node, "B is not 2-D")) };
                // The layer takes W as [outputs, inputs]: ONNX's B with transB, else B transposed.
                let (inputs, outputs, weights) = if int("transB") != 0 {
                    (cols, rows, b.values)
                } else {
                    let mut t = vec![0.0; b.values.len()];
                    for r in 0..rows {
                        for col in 0..cols {
                            t[col * rows + r] = b.values[r * cols + col];
                        }
                    }
                    (rows, cols, t)
                };
                if inputs != c * h * w {
                    return Err(self.refuse(node, &format!("B takes {inputs} inputs, the value has {}", c * h * w)));
                }
                let bias = self.bias(node, 2, outputs)?;
                let y = self.builder.fully_connected(x.id, outputs, weights, bias).map_err(invalid)?;
                return Ok(Value { id: y, flat: true });
            }
            "BatchNormalization" => {
                // Inference BatchNorm, folded into the convolution before it (the serving path
                // exports graphs already folded, `bottlenet_model::fold`; `bench --only engines`
                // does not).
                let x = self.value(node, 0)?;
                let param = |i: usize| -> Result<Vec<f32>> { Ok(self.weight(node, i)?.ok_or_else(|| self.refuse(node, &format!("input {i} is missing")))?.values) };
                let affine = batch_norm_affine([param(1)?, param(2)?, param(3)?, param(4)?], node);
                if !(self.only_reader(node, 0) && affine.is_some_and(|(scale, shift)| self.builder.fold_affine(x.id, &scale, &shift))) {
                    return Err(self.refuse(node, "only a BatchNorm right after a convolution (its one reader) folds"));
                }
                return Ok(x);
            }
            _ => return Err(self.refuse(node, "this operator is not one the engine knows")),
        };
        Ok(Value { id: made, flat: false })
    }
}

impl OnednnGraph {
    /// Builds `model` (one input `[batch, C, H, W]`, one output `[batch, k]` or
    /// `[batch, C', H', W']`) as a oneDNN network for batch 1: threads as the module's
    /// invariant says.
    pub fn load(model: OnnxModel) -> Result<Self> {
        let GraphEnds { name, input_name, output_name, sample_shape, output_shape } = graph_ends(&model, "onednn")?;
        let [c, h, w] = sample_shape[..] else { unreachable!("four dims less the batch") };
        let graph = model.graph();
        let builder = NetworkBuilder::new(1, [c, h, w]).map_err(|e| Error::Model(format!("{name}: {e}")))?;
        let mut translation = Translation {
            name: &name,
            values: HashMap::from([(input_name, Value { id: builder.input(), flat: false })]),
            builder,
            weights: graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect(),
            readers: readers(graph),
        };
        for node in &graph.node {
            let value = translation.node(node)?;
            for out in &node.output {
                translation.values.insert(out.clone(), value);
            }
        }
        let result = translation.values.get(&output_name).copied().ok_or_else(|| Error::Model(format!("{name}: no node makes the output {output_name:?}")))?;
        let made = translation.builder.dims(result.id).map_err(|e| Error::Model(format!("{name}: {e}")))?;
        if made[1..].iter().product::<usize>() != output_shape.iter().product::<usize>() {
            return Err(Error::Model(format!("{name}: the network makes {:?} per sample, the graph declares {output_shape:?}", &made[1..])));
        }
        let mut builder = translation.builder;
        builder.set_winograd(winograd_allowed()?);
        let mfma = builder.multiply_adds() / 1e6;
        let threads = if builder.multiply_adds() >= parallel_min_fma()? { rayon::current_num_threads() } else { 1 };
        let network = builder.build(result.id, threads).map_err(|e| Error::Model(format!("{name}: {e}")))?;
        tracing::debug!(graph = %name, mfma, threads, layers = ?network.describe(), "onednn network");
        let graph = Self { network: Mutex::new(network), sample_shape, output_shape, name };
        // One run on zeros now, so the first request does not pay oneDNN's lazy set-up.
        graph.run(1, vec![0.0; c * h * w])?;
        Ok(graph)
    }

    /// The input's shape without the batch axis (for a server half: the frame's `[c', H', W']`).
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Whether a run uses OpenMP's worker threads (which spin after it), not the calling thread.
    pub fn on_pool(&self) -> bool {
        self.network.lock().unwrap_or_else(std::sync::PoisonError::into_inner).threads() > 1
    }

    /// Runs `n` samples laid end to end in `input` (NCHW): the outputs laid end to end (NCHW),
    /// and their shape (`[n, …]`).
    pub fn run(&self, n: usize, input: Vec<f32>) -> Result<(Vec<usize>, Vec<f32>)> {
        let per_sample: usize = self.sample_shape.iter().product();
        if n == 0 || input.len() != n * per_sample {
            return Err(Error::InvalidArgument(format!("{} takes [{n}, {:?}] inputs, got {} values", self.name, self.sample_shape, input.len())));
        }
        let out_per_sample: usize = self.output_shape.iter().product();
        let mut values = vec![0.0f32; n * out_per_sample];
        let mut network = self.network.lock().map_err(|_| Error::Model(format!("{} failed in an earlier run", self.name)))?;
        for (sample, out) in input.chunks_exact(per_sample).zip(values.chunks_exact_mut(out_per_sample)) {
            network.run(sample, out).map_err(|e| Error::Model(format!("oneDNN failed to run {}: {e}", self.name)))?;
        }
        let mut shape = vec![n];
        shape.extend_from_slice(&self.output_shape);
        Ok((shape, values))
    }
}
