//! Reading the nodes of an exported ONNX graph (docs/onnx.md) for the engines that rebuild it
//! from its operators (XNNPACK, oneDNN): initializers as f32, attributes, how many nodes read
//! each value, and an inference BatchNorm as the per-channel affine it folds into.

use bottlenet_model::onnx::OnnxModel;
use bottlenet_model::onnx::proto::{AttributeProto, GraphProto, NodeProto, TensorProto};
use bottlenet_runtime::{Error, Result};
use std::collections::HashMap;

/// An initializer's dims and values.
pub struct Weight {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// `tensor` as f32 values (the exporter writes float32 raw data only).
pub fn weight(tensor: &TensorProto) -> Result<Weight> {
    let dims: Vec<usize> = tensor.dims.iter().map(|&d| usize::try_from(d).map_err(|_| Error::Model(format!("initializer {} has a negative dim", tensor.name)))).collect::<Result<_>>()?;
    if tensor.data_type != bottlenet_model::onnx::proto::DATA_TYPE_FLOAT || tensor.raw_data.len() != 4 * dims.iter().product::<usize>() {
        return Err(Error::Model(format!("initializer {} is not float32 raw data of shape {dims:?}", tensor.name)));
    }
    let values = tensor.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Weight { dims, values })
}

/// The ints attribute `name` (negative entries read as 0).
pub fn ints(node: &NodeProto, name: &str) -> Option<Vec<usize>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.iter().map(|&v| v.max(0) as usize).collect())
}

/// The attribute `name`, where the node has it.
pub fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// A `Conv`/`ConvTranspose`'s `group` (1 where absent).
pub fn groups(node: &NodeProto) -> usize {
    attribute(node, "group").map_or(1, |a| a.i.max(1) as usize)
}

/// How many nodes (and graph outputs) read each value.
pub fn readers(graph: &GraphProto) -> HashMap<&str, usize> {
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for node in &graph.node {
        for i in &node.input {
            *readers.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *readers.entry(o.name.as_str()).or_default() += 1;
    }
    readers
}

/// An inference `BatchNormalization` as `y = scale·x + shift` per channel, from its four
/// parameters (gamma, beta, mean, var) and `epsilon`; `None` where their lengths differ.
pub fn batch_norm_affine(params: [Vec<f32>; 4], node: &NodeProto) -> Option<(Vec<f32>, Vec<f32>)> {
    let [gamma, beta, mean, var] = params;
    if [beta.len(), mean.len(), var.len()].iter().any(|&l| l != gamma.len()) {
        return None;
    }
    let epsilon = attribute(node, "epsilon").map_or(1e-5, |a| a.f);
    let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + epsilon).sqrt()).collect();
    let shift: Vec<f32> = beta.iter().zip(&mean).zip(&scale).map(|((b, m), a)| b - a * m).collect();
    Some((scale, shift))
}

/// What an engine that rebuilds a graph needs of its ends: one `[batch, C, H, W]` input and one
/// `[batch, k]` or `[batch, C', H', W']` output, only the batch axis symbolic.
pub struct GraphEnds {
    /// e.g. `resnet50 cloud graph`, for errors.
    pub name: String,
    pub input_name: String,
    pub output_name: String,
    /// The input's shape without the batch axis, `[C, H, W]`.
    pub sample_shape: Vec<usize>,
    /// The output's shape without the batch axis.
    pub output_shape: Vec<usize>,
}

/// `model`'s ends, or a one-line refusal naming `engine` (`onednn`, `xnnpack`).
pub fn graph_ends(model: &OnnxModel, engine: &str) -> Result<GraphEnds> {
    let name = format!("{} {} graph", model.metadata("bottlenet.arch").unwrap_or("exported"), model.metadata("bottlenet.half").unwrap_or("model"));
    let fixed = |dims: &[Option<usize>]| dims.iter().skip(1).map(|d| d.ok_or_else(|| Error::Model(format!("{name}: only the batch axis may be symbolic")))).collect::<Result<Vec<_>>>();
    let (input, output) = match (model.inputs().as_slice(), model.outputs().as_slice()) {
        ([i], [o]) if i.dims.len() == 4 && i.dims[0].is_none() && (o.dims.len() == 2 || o.dims.len() == 4) => (i.clone(), o.clone()),
        _ => return Err(Error::Model(format!("{name}: the {engine} engine takes one [batch, C, H, W] input and one [batch, k] or [batch, C, H, W] output"))),
    };
    let (sample_shape, output_shape) = (fixed(&input.dims)?, fixed(&output.dims)?);
    Ok(GraphEnds { name, input_name: input.name, output_name: output.name, sample_shape, output_shape })
}
