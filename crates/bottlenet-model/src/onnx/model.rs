//! An exported ONNX model: the protobuf message, its metadata, and writing it to a file.

use super::proto::{GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, ValueInfoProto, tensor_shape_proto, type_proto};
use crate::bottlenet::BottleNetConfig;
use crate::error::{Error, Result};
use prost::Message;

/// ONNX IR version written (IR 8 carries opset 17; onnxruntime ≥ 1.13 and TensorRT ≥ 8.6 read it).
pub const IR_VERSION: i64 = 8;
/// The default-domain operator set: every operator used (Conv, ConvTranspose,
/// BatchNormalization, Relu, Add, MaxPool, GlobalAveragePool, Flatten, Gemm) as of opset 17.
pub const OPSET: i64 = 17;
/// The phone half's and the full network's input.
pub const IMAGE: &str = "image";
/// The phone half's output and the server half's input: the tensor before quantization (eq. 1).
pub const FEATURES: &str = "features";
/// The server half's and the full network's output: class scores before softmax.
pub const LOGITS: &str = "logits";
/// The symbolic batch axis of every input and output.
pub const BATCH: &str = "batch";

/// One graph input or output: its name and axes (`None` is the symbolic batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSignature {
    pub name: String,
    pub dims: Vec<Option<usize>>,
}

impl TensorSignature {
    fn of(info: &ValueInfoProto) -> Self {
        let dims = match info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(tensor_shape_proto::dimension::Value::DimValue(n)) => usize::try_from(n).ok(),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Self { name: info.name.clone(), dims }
    }

    /// `name [batch, 1, 28, 28]`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.map_or_else(|| BATCH.to_string(), |n| n.to_string())).collect();
        format!("{} [{}]", self.name, dims.join(", "))
    }
}

/// An ONNX model with its weights embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxModel {
    proto: ModelProto,
}

impl OnnxModel {
    /// Wraps a finished graph; records the configuration as metadata (`bottlenet.*` keys).
    pub(crate) fn new(graph: GraphProto, config: &BottleNetConfig, half: &str) -> Self {
        let mut model = Self {
            proto: ModelProto {
                ir_version: IR_VERSION,
                producer_name: "bottlenet".into(),
                producer_version: env!("CARGO_PKG_VERSION").into(),
                domain: String::new(),
                model_version: 1,
                doc_string: format!("BottleNet {half} ({} {}), exported from burn", config.arch, config.split_name()),
                graph: Some(graph),
                opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
                metadata_props: Vec::new(),
            },
        };
        model.set_metadata("bottlenet.half", half);
        model.set_metadata("bottlenet.arch", &config.arch.to_string());
        model.set_metadata("bottlenet.input_shape", &format!("{:?}", config.input_shape));
        model.set_metadata("bottlenet.num_classes", &config.num_classes.to_string());
        if let Some(j) = config.split {
            model.set_metadata("bottlenet.split", &format!("RB{j}"));
            model.set_metadata("bottlenet.c_prime", &config.c_prime.to_string());
            model.set_metadata("bottlenet.s", &config.s.to_string());
            model.set_metadata("bottlenet.codec", &config.codec.codec.to_string());
            model.set_metadata("bottlenet.quality", &config.codec.quality.to_string());
            model.set_metadata("bottlenet.bits", &config.codec.bits.to_string());
        }
        model
    }

    /// Sets (or replaces) one `metadata_props` entry.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        self.proto.metadata_props.retain(|e| e.key != key);
        self.proto.metadata_props.push(StringStringEntryProto { key: key.into(), value: value.into() });
    }

    /// The metadata value under `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.proto.metadata_props.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// The graph: nodes in run order, initializers, one input and one output (what the CPU
    /// engines read).
    pub fn graph(&self) -> &GraphProto {
        // `new` always sets the graph and nothing removes it.
        self.proto.graph.as_ref().expect("an OnnxModel always holds a graph")
    }

    /// The graph's inputs.
    pub fn inputs(&self) -> Vec<TensorSignature> {
        self.graph().input.iter().map(TensorSignature::of).collect()
    }

    /// The graph's outputs.
    pub fn outputs(&self) -> Vec<TensorSignature> {
        self.graph().output.iter().map(TensorSignature::of).collect()
    }

    /// Operator types in node order.
    pub fn op_types(&self) -> Vec<&str> {
        self.graph().node.iter().map(|n| n.op_type.as_str()).collect()
    }

    /// Initializer names in the order they are stored.
    pub fn initializer_names(&self) -> Vec<&str> {
        self.graph().initializer.iter().map(|t| t.name.as_str()).collect()
    }

    /// The serialized `ModelProto`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Parses a serialized model (one this crate wrote; unknown fields are skipped).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let proto = ModelProto::decode(bytes).map_err(|e| Error::Config(format!("not an ONNX model: {e}")))?;
        if proto.graph.is_none() {
            return Err(Error::Config("ONNX model has no graph".into()));
        }
        Ok(Self { proto })
    }
}
