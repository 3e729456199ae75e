//! `bottlenet-codec` owns everything between one sample's feature tensor and the bytes on the
//! wire: the min–max quantizer (paper eq. 1), channel tiling (§2.2), the image codecs (baseline
//! JPEG full and abbreviated, PNG, raw) and the versioned, checksummed wire frame (version 1 self-describing, version 2 with only
//! what changes per image). For the
//! cloud-only candidate it also owns the colour JPEG of the input photo (`photo`: YCbCr 4:2:0 or
//! 4:4:4, DESIGN §1), which travels as a standard JPEG file rather than a feature frame.
//!
//! It must not depend on a deep-learning framework: the phone, the server and the training loop
//! all call it with plain `f32` slices, so the pixels the server decodes are the pixels training saw.
//!
//! ```
//! use bottlenet_codec::{decode, encode, CodecParams, FeatureTensor, Shape};
//! let tensor = FeatureTensor::new(Shape::new(1, 28, 28), (0..784).map(|i| (i % 17) as f32).collect())?;
//! let frame = encode(&tensor, &CodecParams::paper())?;
//! let back = decode(&frame)?;
//! assert_eq!(back.shape, tensor.shape);
//! # Ok::<(), bottlenet_codec::Error>(())
//! ```

pub mod codec;
pub mod error;
pub mod frame;
pub mod frame_v2;
pub mod jpeg;
pub mod photo;
pub mod quantize;
pub mod synthetic;
pub mod tensor;
pub mod tile;

pub use codec::{CodecKind, CodecParams, GrayImage, ImageCodec};
pub use error::{Error, Result};
pub use frame::{FrameHeader, FrameSpec, HEADER_LEN, decode, decode_header, decode_header_with, decode_with, encode, roundtrip_batch};
pub use frame_v2::{HEADER_LEN_V2_MIN, VERSION_V2, encode_v2};
pub use photo::{ChromaSampling, PhotoJpeg, decode_photo};
pub use tensor::{FeatureTensor, Shape};
