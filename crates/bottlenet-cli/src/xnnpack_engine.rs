//! The default inference engine on the CPU where the build found Debian's XNNPACK (cargo feature
//! `xnnpack`, crate `bottlenet-xnnpack`): each half of the bundle, BatchNorm folded and exported
//! to ONNX in memory exactly as `bottlenet export` writes it (docs/onnx.md), rebuilt as XNNPACK
//! operators in NHWC, with the weights packed once. Measured faster than tract and flex on
//! ResNet-50's halves and on the compact network (docs/engines.md, `bench --only engines`).
//!
//! Invariants:
//! * the graph's input and output stay NCHW (what the codec and the exporter use); the
//!   transposes to and from NHWC happen here, at the two ends, and nowhere inside;
//! * a ReLU folds into the layer before it only where that layer's output has no other reader;
//! * a graph of fewer than [`crate::engine::PARALLEL_MIN_FMA`] multiply-adds per sample runs on the calling
//!   thread, a larger one on a pool of `--threads` threads (as tract's, docs/engines.md);
//! * one network per graph, run under a lock (its buffers are set up per batch size), so
//!   concurrent requests to one half take turns.

use crate::engine::parallel_min_fma;
use bottlenet_model::onnx::OnnxModel;
use crate::onnx_nodes::{GraphEnds, graph_ends, Weight, attribute, batch_norm_affine, ints, readers, weight};
use bottlenet_model::onnx::proto::{NodeProto, TensorProto};
use bottlenet_runtime::{Error, Result};
use bottlenet_xnnpack::{Extent, Network, NetworkBuilder, Padding, ValueId, Window};
use std::collections::HashMap;
use std::sync::Mutex;

/// One exported graph as an XNNPACK network.
#[derive(Debug)]
pub struct XnnpackGraph {
    network: Mutex<Network>,
    /// The input's shape without the batch axis, NCHW, e.g. `[3, 224, 224]`.
    sample_shape: Vec<usize>,
    /// The output's shape without the batch axis, NCHW (`[classes]` for logits).
    output_shape: Vec<usize>,
    /// e.g. `resnet50 cloud graph`, for errors.
    name: String,
}

/// One value of the graph as the builder holds it.
#[derive(Clone, Copy, Debug)]
struct Value {
    id: ValueId,
    /// After `Flatten`: a vector (NHWC and NCHW orders agree only where it was 1×1×c).
    flat: bool,
}

/// NCHW → NHWC of samples of `[c, h, w]`, from `input` into `out` (of the same length; a
/// plain copy where `c` or `h·w` is 1).
fn write_nhwc(input: &[f32], out: &mut [f32], [c, h, w]: [usize; 3]) {
    if c == 1 || h * w == 1 {
        out.copy_from_slice(input);
        return;
    }
    for (sample, dst) in input.chunks_exact(c * h * w).zip(out.chunks_exact_mut(c * h * w)) {
        for (ch, plane) in sample.chunks_exact(h * w).enumerate() {
            for (p, &v) in plane.iter().enumerate() {
                dst[p * c + ch] = v;
            }
        }
    }
}

/// NHWC → NCHW of `n` samples of `[c, h, w]`.
fn to_nchw(input: &[f32], n: usize, [c, h, w]: [usize; 3]) -> Vec<f32> {
    if c == 1 || h * w == 1 {
        return input.to_vec();
    }
    let mut out = vec![0.0; input.len()];
    for (sample, dst) in input.chunks_exact(c * h * w).zip(out.chunks_exact_mut(c * h * w)).take(n) {
        for (p, pixel) in sample.chunks_exact(c).enumerate() {
            for (ch, &v) in pixel.iter().enumerate() {
                dst[ch * h * w + p] = v;
            }
        }
    }
    out
}

/// Why `graph`'s `node` cannot run here, in one line.
fn refusal(graph: &str, node: &NodeProto, why: &str) -> Error {
    Error::Model(format!("the xnnpack engine cannot run {graph}'s {} node {:?}: {why}; pass --engine tract", node.op_type, node.name))
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

    fn weight(&self, node: &NodeProto, index: usize) -> Result<Option<Weight>> {
        match node.input.get(index).filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(name) => {
                let tensor = self.weights.get(name.as_str()).ok_or_else(|| self.refuse(node, &format!("{name:?} is not an initializer")))?;
                weight(tensor).map(Some)
            }
        }
    }

    fn spatial(&self, node: &NodeProto, index: usize) -> Result<(Value, Extent)> {
        let value = self.value(node, index)?;
        let extent = self.builder.extent(value.id).map_err(|e| self.refuse(node, &e.to_string()))?;
        if value.flat && extent.height * extent.width != 1 {
            return Err(self.refuse(node, "its input was flattened"));
        }
        Ok((value, extent))
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
        Ok(Window { kernel: pair("kernel_shape", kernel)?, stride: pair("strides", [1, 1])?, dilation: pair("dilations", [1, 1])?, padding: Padding { top, left, bottom, right } })
    }

    fn bias(&self, node: &NodeProto, index: usize, len: usize) -> Result<Vec<f32>> {
        match self.weight(node, index)? {
            None => Ok(vec![0.0; len]),
            Some(b) if b.values.len() == len => Ok(b.values),
            Some(b) => Err(self.refuse(node, &format!("its bias has {} values for {len} outputs", b.values.len()))),
        }
    }

    fn node(&mut self, node: &NodeProto) -> Result<Value> {
        let graph = self.name;
        let invalid = move |e: bottlenet_xnnpack::Error| refusal(graph, node, &e.to_string());
        let made = match node.op_type.as_str() {
            "Conv" => {
                let (x, from) = self.spatial(node, 0)?;
                let w = self.weight(node, 1)?.ok_or_else(|| self.refuse(node, "it has no weight"))?;
                let [o, i, kh, kw] = w.dims[..] else { return Err(self.refuse(node, "its weight is not 4-D")) };
                let window = self.window(node, [kh, kw])?;
                let groups = crate::onnx_nodes::groups(node);
                if i * groups != from.channels || window.kernel != [kh, kw] {
                    return Err(self.refuse(node, &format!("a {:?} weight does not fit {} input channels in {groups} groups", w.dims, from.channels)));
                }
                // ONNX [O, I/g, kh, kw] → XNNPACK's OHWI.
                let mut kernel = vec![0.0; w.values.len()];
                for oc in 0..o {
                    for ic in 0..i {
                        for k in 0..kh * kw {
                            kernel[(oc * kh * kw + k) * i + ic] = w.values[(oc * i + ic) * kh * kw + k];
                        }
                    }
                }
                let bias = self.bias(node, 2, o)?;
                self.builder.convolution(x.id, window, groups, o, kernel, bias, false).map_err(invalid)?
            }
            "ConvTranspose" => {
                let (x, from) = self.spatial(node, 0)?;
                let w = self.weight(node, 1)?.ok_or_else(|| self.refuse(node, "it has no weight"))?;
                let [c_in, og, kh, kw] = w.dims[..] else { return Err(self.refuse(node, "its weight is not 4-D")) };
                let window = self.window(node, [kh, kw])?;
                let groups = crate::onnx_nodes::groups(node);
                if c_in != from.channels || !c_in.is_multiple_of(groups) || attribute(node, "output_shape").is_some() {
                    return Err(self.refuse(node, &format!("a {:?} weight (or an output_shape) does not fit {} input channels in {groups} groups", w.dims, from.channels)));
                }
                let adjustment = match ints(node, "output_padding").as_deref() {
                    None => [0, 0],
                    Some(&[a, b]) => [a, b],
                    Some(other) => return Err(self.refuse(node, &format!("output_padding {other:?} is not 2-D"))),
                };
                // ONNX [C_in, O/g, kh, kw] → XNNPACK's [g, O/g, kh, kw, C_in/g].
                let ig = c_in / groups;
                let mut kernel = vec![0.0; w.values.len()];
                for g in 0..groups {
                    for oc in 0..og {
                        for k in 0..kh * kw {
                            for ic in 0..ig {
                                kernel[((g * og + oc) * kh * kw + k) * ig + ic] = w.values[((g * ig + ic) * og + oc) * kh * kw + k];
                            }
                        }
                    }
                }
                let bias = self.bias(node, 2, og * groups)?;
                self.builder.deconvolution(x.id, window, adjustment, groups, og * groups, kernel, bias, false).map_err(invalid)?
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
                let only_reader = self.readers.get(node.input[0].as_str()) == Some(&1);
                if only_reader && self.builder.fuse_relu(x.id) {
                    return Ok(x);
                }
                self.builder.relu(x.id).map_err(invalid)?
            }
            "Add" => {
                let (a, b) = (self.value(node, 0)?, self.value(node, 1)?);
                if a.flat != b.flat {
                    return Err(self.refuse(node, "one operand is flattened, the other not"));
                }
                let sum = self.builder.add(a.id, b.id, false).map_err(invalid)?;
                return Ok(Value { id: sum, flat: a.flat });
            }
            "GlobalAveragePool" => {
                let (x, _) = self.spatial(node, 0)?;
                self.builder.global_average_pool(x.id).map_err(invalid)?
            }
            "Flatten" => {
                let x = self.value(node, 0)?;
                let e = self.builder.extent(x.id).map_err(invalid)?;
                if attribute(node, "axis").is_some_and(|a| a.i != 1) || (e.height * e.width != 1 && e.channels != 1) {
                    return Err(self.refuse(node, &format!("only axis 1 of a tensor with 1×1 pixels or one channel flattens the same in NHWC (got {}×{}×{})", e.channels, e.height, e.width)));
                }
                return Ok(Value { id: x.id, flat: true });
            }
            "Gemm" => {
                let x = self.value(node, 0)?;
                let e = self.builder.extent(x.id).map_err(invalid)?;
                let float = |name: &str| attribute(node, name).map_or(1.0, |a| a.f);
                let int = |name: &str| attribute(node, name).map_or(0, |a| a.i);
                if !x.flat || e.height * e.width != 1 || float("alpha") != 1.0 || float("beta") != 1.0 || int("transA") != 0 {
                    return Err(self.refuse(node, "only y = x·B + C on a flattened 1×1 input is supported"));
                }
                let w = self.weight(node, 1)?.ok_or_else(|| self.refuse(node, "it has no B"))?;
                let [rows, cols] = w.dims[..] else { return Err(self.refuse(node, "B is not 2-D")) };
                // XNNPACK takes [inputs, outputs] with its transpose flag: ONNX's B unless transB.
                let (inputs, outputs, kernel) = if int("transB") != 0 {
                    let mut t = vec![0.0; w.values.len()];
                    for r in 0..rows {
                        for c in 0..cols {
                            t[c * rows + r] = w.values[r * cols + c];
                        }
                    }
                    (cols, rows, t)
                } else {
                    (rows, cols, w.values)
                };
                if inputs != e.channels {
                    return Err(self.refuse(node, &format!("B takes {inputs} inputs, the value has {}", e.channels)));
                }
                let bias = self.bias(node, 2, outputs)?;
                let y = self.builder.fully_connected(x.id, outputs, kernel, bias, false).map_err(invalid)?;
                return Ok(Value { id: y, flat: true });
            }
            "BatchNormalization" => {
                // Inference BatchNorm, folded into the layer before it (the serving path exports
                // graphs already folded, `bottlenet_model::fold`; `bench --only engines` does not).
                let x = self.value(node, 0)?;
                let param = |i: usize| -> Result<Vec<f32>> { Ok(self.weight(node, i)?.ok_or_else(|| self.refuse(node, &format!("input {i} is missing")))?.values) };
                let affine = batch_norm_affine([param(1)?, param(2)?, param(3)?, param(4)?], node);
                let only_reader = self.readers.get(node.input[0].as_str()) == Some(&1);
                if !(only_reader && affine.is_some_and(|(scale, shift)| self.builder.fold_affine(x.id, &scale, &shift))) {
                    return Err(self.refuse(node, "only a BatchNorm right after a convolution (its one reader) folds"));
                }
                return Ok(x);
            }
            _ => return Err(self.refuse(node, "this operator is not one the engine knows")),
        };
        Ok(Value { id: made, flat: false })
    }
}

impl XnnpackGraph {
    /// Builds `model` (one input `[batch, C, H, W]`, one output `[batch, k]` or
    /// `[batch, C', H', W']`) as an XNNPACK network: threads as the module's invariant says.
    pub fn load(model: OnnxModel) -> Result<Self> {
        let GraphEnds { name, input_name, output_name, sample_shape, output_shape } = graph_ends(&model, "xnnpack")?;
        let [c, h, w] = sample_shape[..] else { unreachable!("four dims less the batch") };
        let graph = model.graph();
        let readers = readers(graph);
        let builder = NetworkBuilder::new(Extent::new(h, w, c)).map_err(|e| Error::Model(format!("{name}: {e}")))?;
        let mut translation = Translation {
            name: &name,
            values: HashMap::from([(input_name, Value { id: builder.input(), flat: false })]),
            builder,
            weights: graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect(),
            readers,
        };
        for node in &graph.node {
            let value = translation.node(node)?;
            for out in &node.output {
                translation.values.insert(out.clone(), value);
            }
        }
        let result = translation.values.get(&output_name).copied().ok_or_else(|| Error::Model(format!("{name}: no node makes the output {output_name:?}")))?;
        let made = translation.builder.extent(result.id).map_err(|e| Error::Model(format!("{name}: {e}")))?;
        let expected: usize = output_shape.iter().product();
        if made.len() != expected {
            return Err(Error::Model(format!("{name}: the network makes {made:?} per sample, the graph declares {output_shape:?}")));
        }
        let builder = translation.builder;
        let threads = if builder.multiply_adds() >= parallel_min_fma()? { rayon::current_num_threads() } else { 1 };
        tracing::debug!(graph = %name, mfma = builder.multiply_adds() / 1e6, threads, "xnnpack network");
        let network = builder.build(result.id, threads).map_err(|e| Error::Model(format!("{name}: {e}")))?;
        let graph = Self { network: Mutex::new(network), sample_shape, output_shape, name };
        // One run on zeros now, so the first request does not pay the buffers' setup.
        graph.run(1, vec![0.0; c * h * w])?;
        Ok(graph)
    }

    /// The input's shape without the batch axis (for a server half: the frame's `[c', H', W']`).
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Whether a run uses a thread pool (whose workers spin after it), not the calling thread.
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
        let [c, h, w] = self.sample_shape[..] else { unreachable!("checked at load") };
        let mut network = self.network.lock().map_err(|_| Error::Model(format!("{} failed in an earlier run", self.name)))?;
        let out = network.run_with(n, |buffer| write_nhwc(&input, buffer, [c, h, w])).map_err(|e| Error::Model(format!("XNNPACK failed to run {}: {e}", self.name)))?;
        let values = match self.output_shape[..] {
            [oc, oh, ow] => to_nchw(out, n, [oc, oh, ow]),
            _ => out.to_vec(),
        };
        let mut shape = vec![n];
        shape.extend_from_slice(&self.output_shape);
        Ok((shape, values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_transposes_invert_each_other_and_skip_single_channels() {
        let x: Vec<f32> = (0..2 * 3 * 2 * 2).map(|v| v as f32).collect();
        let mut nhwc = vec![0.0; x.len()];
        write_nhwc(&x, &mut nhwc, [3, 2, 2]);
        assert_eq!(nhwc[..6], [0.0, 4.0, 8.0, 1.0, 5.0, 9.0]);
        assert_eq!(to_nchw(&nhwc, 2, [3, 2, 2]), x);
        write_nhwc(&x, &mut nhwc, [1, 3, 4]);
        assert_eq!(nhwc, x);
    }

    /// The shipped bundle's full network on 8 embedded test images in one batch, and the server
    /// half on batches of 3 then 1 (the network is set up again for each size): flex's logits
    /// within 1e-4 of their scale. Under CI (libxnnpack-dev installed) XNNPACK must be built in.
    #[cfg(feature = "full")]
    #[test]
    fn the_shipped_bundle_gives_flex_logits_at_every_batch_size() {
        use bottlenet_data::{BatchOptions, Batcher, embedded_subset};
        use bottlenet_model::{Bundle, CodecMode, DeviceChoice, FoldBatchNorm};
        use burn::tensor::{Tensor, TensorData};
        if !bottlenet_xnnpack::linked() {
            assert!(std::env::var_os("CI").is_none(), "CI installs libxnnpack-dev, yet this build has no XNNPACK");
            let refused = crate::engine::Engine::resolve(Some(crate::engine::Engine::Xnnpack), DeviceChoice::Flex).unwrap_err().to_string();
            assert!(refused.contains("libxnnpack-dev") && !refused.contains('\n'), "{refused}");
            eprintln!("checked the refusal only: this build has no XNNPACK");
            return;
        }
        let bundle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fashion-compact");
        let device = DeviceChoice::Flex.device().unwrap();
        let full = Bundle::load_full(&bundle, &device).unwrap().unwrap().fold_batch_norms();
        let cloud = Bundle::load_cloud(&bundle, &device).unwrap().fold_batch_norms();
        let data = embedded_subset().unwrap();
        let batch = Batcher::new(data.test.clone(), BatchOptions::eval(8)).unwrap().epoch(0).next().unwrap().unwrap();
        let host = |t: Tensor<2>| t.into_data().try_into_vec_as::<f32>().unwrap();
        let close = |got: &[f32], want: &[f32], what: &str| {
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let diff = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(got.len() == want.len() && diff <= 1e-4 * scale, "{what}: differs from flex by {diff} at scale {scale}");
        };
        let images = Tensor::<4>::from_data(TensorData::new(batch.pixels.clone(), batch.shape.clone()), &device);
        let want = host(full.forward(images, CodecMode::Identity).unwrap());
        let graph = XnnpackGraph::load(bottlenet_model::onnx::export_full(&full).unwrap()).unwrap();
        let (shape, got) = graph.run(8, batch.pixels.clone()).unwrap();
        assert_eq!(shape, [8, 10]);
        close(&got, &want, "full network, batch 8");

        let tail = cloud.half(1).unwrap();
        let graph = XnnpackGraph::load(bottlenet_model::onnx::export_cloud(tail).unwrap()).unwrap();
        let per_sample: usize = graph.sample_shape().iter().product();
        let mut seed = 1u32;
        let features: Vec<f32> = (0..3 * per_sample).map(|_| { seed = seed.wrapping_mul(1664525).wrapping_add(1013904223); (seed >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0 }).collect();
        let mut dims = vec![3];
        dims.extend_from_slice(graph.sample_shape());
        let z = Tensor::<4>::from_data(TensorData::new(features.clone(), dims), &device);
        let want = host(tail.logits(z).unwrap());
        close(&graph.run(3, features.clone()).unwrap().1, &want, "server half, batch 3");
        close(&graph.run(1, features[..per_sample].to_vec()).unwrap().1, &want[..10], "server half, batch 1 after 3");
    }
}
