//! ONNX export of each half (DESIGN §4 "Engines"): the phone half, the server half and a whole
//! network as self-contained ONNX files (opset 17, float32, weights embedded, symbolic batch), so
//! a phone runtime, onnxruntime or TensorRT can run them.
//!
//! The protobuf is written here with `prost` from the ONNX schema ([`proto`]) rather than through
//! `burn-onnx`'s exporter: burn-onnx 0.22's capture-based lowering has no rule for transposed
//! convolutions (every `s > 1` restoration unit, the shipped model's included) nor for
//! `mean_dim` (the backbone's global average pool), and it names graph values after capture ids.
//! Our networks use nine operators, each the standard ONNX operator of the burn layer.
//!
//! Names and shapes (`C×H×W` the bundle's input, `[c', H', W']` the split's reduced shape):
//!
//! | file | input | output |
//! |---|---|---|
//! | phone half | `image` `[batch, C, H, W]` | `features` `[batch, c', H', W']` |
//! | server half | `features` `[batch, c', H', W']` | `logits` `[batch, classes]` |
//! | full network | `image` `[batch, C, H, W]` | `logits` `[batch, classes]` |
//!
//! `image` is normalised as the manifest says (`bottlenet.normalization.*` metadata); `features`
//! is what eq. 1 quantizes on the phone and what dequantization gives back on the server.

pub mod bundle;
pub mod export;
pub(crate) mod graph;
pub mod model;
pub mod proto;

pub use bundle::{BundleExport, ExportedModel, export_bundle, exported_file};
pub use export::{export_cloud, export_full, export_mobile};
pub use model::{BATCH, FEATURES, IMAGE, IR_VERSION, LOGITS, OPSET, OnnxModel, TensorSignature};
