//! `bottlenet-model` owns the networks: the ResNet family (torchvision ResNet-18/34/50/101 and a
//! compact ResNet for 28×28 / 32×32 inputs) with their split points, the bottleneck unit (paper
//! §2.1), the codec round trip inside the forward pass with a straight-through backward (§2.2),
//! torchvision weight import, model bundles that store each split's phone and server halves
//! apart (§3.4), and ONNX export of each half.
//!
//! It depends on burn, `bottlenet-codec`, `bottlenet-onednn` (oneDNN's convolutions on flex, where
//! Debian's libdnnl-dev is installed: `onednn_conv`) and `prost` (the ONNX protobuf) only; it must
//! not depend on training, serving or the CLI (a phone or a server build links this crate without any training code).
//!
//! ```no_run
//! use bottlenet_model::{Arch, BottleNet, BottleNetConfig, CodecMode, DeviceChoice};
//! use burn::tensor::{Distribution, Tensor};
//! # fn main() -> bottlenet_model::Result<()> {
//! let device = DeviceChoice::Flex.device()?;
//! let config = BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(2, 4, 2);
//! let net = BottleNet::new(&config, &device)?;
//! let images = Tensor::<4>::random([8, 1, 28, 28], Distribution::Default, &device);
//! let logits = net.forward(images.clone(), CodecMode::Aware)?;      // in one process
//! let frames = net.encode(images)?;                                // phone
//! let same = net.decode(&frames)?;                                 // server
//! # let _ = (logits, same);
//! # Ok(()) }
//! ```

pub mod arch;
pub mod batch_norm;
pub mod bottleneck;
pub mod bottlenet;
pub mod bundle;
pub mod device;
pub mod error;
mod flex_buffers;
pub mod fold;
pub mod import;
pub mod info;
pub mod observe;
pub mod onednn_conv;
pub mod onnx;
pub mod pool;
pub mod resnet;
pub mod straight_through;

pub use batch_norm::{NormKernels, fused_norm_passes, norm_kernels, set_norm_kernels};
pub use arch::{Arch, BackboneConfig, BackboneSpec, BlockKind, BlockSpec, StemSpec, parse_shape};
pub use bottleneck::{BottleneckSpec, BottleneckUnit, ReductionUnit, RestorationUnit};
pub use bottlenet::{BottleNet, BottleNetConfig, CloudHalf, CodecMode, ForwardOutput, MobileHalf};
pub use bundle::{
    Bundle, CloudBundle, FORMAT_VERSION, FULL_FILE, FullEntry, HalfBundle, MANIFEST_FILE, Manifest, MobileBundle, Normalization, SplitEntry,
    SplitStats, WeightsEntry,
};
pub use device::DeviceChoice;
pub use error::{Error, Result};
pub use fold::FoldBatchNorm;
pub use import::{ImportOptions, checkpoint_classes, load_torchvision};
pub use info::{InfoRow, InfoTable, SplitPoint, model_info, split_points};
pub use observe::{Op, OpObserver, Unobserved};
pub use onednn_conv::{ConvKernels, conv_kernels, onednn_passes, set_conv_kernels};
pub use resnet::{BasicBlock, Block, BottleneckBlock, ResNet, ResNetHead, ResNetTail};
pub use straight_through::codec_straight_through;
