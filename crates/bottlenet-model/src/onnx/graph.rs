//! An ONNX graph under construction, and one emitter per burn layer the networks use.
//!
//! Every emitter appends the standard ONNX operator that computes exactly what the burn layer's
//! inference `forward` computes (opset 17 semantics), with the layer's weights as float32
//! initializers named after the module path (torchvision's keys: `backbone.layer1.0.conv1.weight`,
//! BatchNorm's `weight`/`bias`/`running_mean`/`running_var`). Values are named after the layer
//! that produced them, so a runtime's error or profile points at the module.

use super::proto::{
    AttributeProto, DATA_TYPE_FLOAT, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_type,
    tensor_shape_proto, type_proto,
};
use crate::error::{Error, Result};
use burn::module::Param;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;
use std::collections::HashSet;

/// One axis of a graph input or output: a fixed size or the symbolic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Symbol(&'static str),
}

/// Nodes in topological order and the initializers they read.
#[derive(Debug, Default)]
pub(crate) struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: HashSet<String>,
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: value, r#type: attribute_type::INT, ..Default::default() }
}

fn ints_attr(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: values.iter().map(|&v| v as i64).collect(), r#type: attribute_type::INTS, ..Default::default() }
}

fn float_attr(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: value, r#type: attribute_type::FLOAT, ..Default::default() }
}

/// A float32 tensor type with the given axes.
pub(crate) fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
                Dim::Symbol(s) => tensor_shape_proto::dimension::Value::DimParam((*s).to_string()),
            }),
        })
        .collect();
    let tensor = type_proto::Tensor { elem_type: DATA_TYPE_FLOAT, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)) }), doc_string: String::new() }
}

/// Explicit `(top, left, bottom, right)` padding; `Same` depends on the input size, which the
/// networks never use and the exporter refuses rather than guess.
fn explicit_padding(padding: &PaddingConfig2d, at: &str) -> Result<[usize; 4]> {
    match padding {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Ok([*top, *left, *bottom, *right]),
        PaddingConfig2d::Same => Err(Error::Config(format!("{at}: 'same' padding cannot be exported to ONNX; use explicit padding"))),
    }
}

impl GraphBuilder {
    /// A value name not used yet: `base`, else `base_1`, `base_2`, …
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 0;
        while !self.names.insert(name.clone()) {
            k += 1;
            name = format!("{base}_{k}");
        }
        name
    }

    /// Reserves a graph input's name so no node output takes it.
    pub(crate) fn input(&mut self, name: &str) -> String {
        self.fresh(name)
    }

    /// A float32 initializer holding `tensor`'s values, row-major.
    pub(crate) fn weight<const D: usize>(&mut self, name: &str, tensor: Tensor<D>) -> Result<String> {
        let dims = tensor.dims().iter().map(|&d| d as i64).collect();
        let values = tensor
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Config(format!("cannot read weight {name} for ONNX export: {e:?}")))?;
        let raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let name = self.fresh(name);
        self.initializers.push(TensorProto { dims, data_type: DATA_TYPE_FLOAT, name: name.clone(), raw_data });
        Ok(name)
    }

    fn param<const D: usize>(&mut self, name: &str, param: &Param<Tensor<D>>) -> Result<String> {
        self.weight(name, param.val())
    }

    /// Appends `op_type(inputs)` and returns the name of its one output, `output`.
    fn node(&mut self, op_type: &str, output: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh(output);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op_type.into(),
            attribute,
            domain: String::new(),
        });
        output
    }

    /// `Conv` with the layer's weight, bias, stride, padding, dilation and groups.
    pub(crate) fn conv2d(&mut self, conv: &Conv2d, path: &str, x: String) -> Result<String> {
        let pads = explicit_padding(&conv.padding, path)?;
        let mut inputs = vec![x, self.param(&format!("{path}.weight"), &conv.weight)?];
        if let Some(bias) = &conv.bias {
            inputs.push(self.param(&format!("{path}.bias"), bias)?);
        }
        let attrs = vec![
            ints_attr("kernel_shape", &conv.kernel_size),
            ints_attr("strides", &conv.stride),
            // ONNX orders pads as [H begin, W begin, H end, W end]: burn's (top, left, bottom, right).
            ints_attr("pads", &pads),
            ints_attr("dilations", &conv.dilation),
            int_attr("group", conv.groups as i64),
        ];
        Ok(self.node("Conv", path, inputs, attrs))
    }

    /// `ConvTranspose`: burn's weight is `[c_in, c_out/groups, k, k]`, ONNX's layout, and its
    /// output side `(H−1)·s − 2p + d·(k−1) + o + 1` is ONNX's with `pads = [p, p, p, p]` and
    /// `output_padding = o`.
    pub(crate) fn conv_transpose2d(&mut self, conv: &ConvTranspose2d, path: &str, x: String) -> Result<String> {
        let mut inputs = vec![x, self.param(&format!("{path}.weight"), &conv.weight)?];
        if let Some(bias) = &conv.bias {
            inputs.push(self.param(&format!("{path}.bias"), bias)?);
        }
        let [ph, pw] = conv.padding;
        let attrs = vec![
            ints_attr("kernel_shape", &conv.kernel_size),
            ints_attr("strides", &conv.stride),
            ints_attr("pads", &[ph, pw, ph, pw]),
            ints_attr("output_padding", &conv.padding_out),
            ints_attr("dilations", &conv.dilation),
            int_attr("group", conv.groups as i64),
        ];
        Ok(self.node("ConvTranspose", path, inputs, attrs))
    }

    /// `BatchNormalization` with the running statistics: burn's inference path,
    /// `(x − mean) / sqrt(var + ε) · γ + β`.
    pub(crate) fn batch_norm(&mut self, bn: &BatchNorm, path: &str, x: String) -> Result<String> {
        let inputs = vec![
            x,
            self.param(&format!("{path}.weight"), &bn.gamma)?,
            self.param(&format!("{path}.bias"), &bn.beta)?,
            self.weight(&format!("{path}.running_mean"), bn.running_mean.value())?,
            self.weight(&format!("{path}.running_var"), bn.running_var.value())?,
        ];
        Ok(self.node("BatchNormalization", path, inputs, vec![float_attr("epsilon", bn.epsilon as f32)]))
    }

    /// `MaxPool` (padding counts as −∞, as in burn and PyTorch).
    pub(crate) fn max_pool2d(&mut self, pool: &MaxPool2d, path: &str, x: String) -> Result<String> {
        let pads = explicit_padding(&pool.padding, path)?;
        let attrs = vec![
            ints_attr("kernel_shape", &pool.kernel_size),
            ints_attr("strides", &pool.stride),
            ints_attr("pads", &pads),
            ints_attr("dilations", &pool.dilation),
            int_attr("ceil_mode", pool.ceil_mode as i64),
        ];
        Ok(self.node("MaxPool", path, vec![x], attrs))
    }

    pub(crate) fn relu(&mut self, path: &str, x: String) -> String {
        self.node("Relu", &format!("{path}.relu"), vec![x], Vec::new())
    }

    pub(crate) fn add(&mut self, path: &str, a: String, b: String) -> String {
        self.node("Add", &format!("{path}.add"), vec![a, b], Vec::new())
    }

    /// Mean over H and W, flattened to `[batch, C]` (the ResNet's `avgpool` + `flatten`).
    pub(crate) fn global_average_pool(&mut self, x: String) -> String {
        let pooled = self.node("GlobalAveragePool", "avgpool", vec![x], Vec::new());
        self.node("Flatten", "flatten", vec![pooled], vec![int_attr("axis", 1)])
    }

    /// `Gemm`: burn's weight is `[in, out]`, so `y = x·W + b` needs no transpose.
    pub(crate) fn linear(&mut self, linear: &Linear, path: &str, x: String) -> Result<String> {
        let mut inputs = vec![x, self.param(&format!("{path}.weight"), &linear.weight)?];
        if let Some(bias) = &linear.bias {
            inputs.push(self.param(&format!("{path}.bias"), bias)?);
        }
        Ok(self.node("Gemm", path, inputs, Vec::new()))
    }

    /// The finished graph: `output` names the last node's result (the graph's one output).
    pub(crate) fn finish(mut self, name: &str, input: ValueInfoProto, output_name: &str, output: &[Dim]) -> Result<GraphProto> {
        let last = self.nodes.last_mut().ok_or_else(|| Error::Config("an ONNX graph needs at least one node".into()))?;
        if self.names.contains(output_name) {
            return Err(Error::Config(format!("ONNX output name {output_name:?} is already a value of the graph")));
        }
        last.output = vec![output_name.to_string()];
        Ok(GraphProto {
            node: self.nodes,
            name: name.into(),
            initializer: self.initializers,
            doc_string: String::new(),
            input: vec![input],
            output: vec![value_info(output_name, output)],
        })
    }
}
