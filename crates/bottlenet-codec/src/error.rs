//! The codec's one error type: every way a tensor cannot be encoded or a frame cannot be decoded.

/// Why a tensor could not be encoded or a frame could not be decoded.
///
/// Every variant says what was wrong in one line; decoding untrusted bytes only ever returns one
/// of these, never panics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensor has {len} values but shape {shape} needs {expected}")]
    ShapeMismatch { shape: String, len: usize, expected: usize },
    #[error("shape {0} is empty or too large (at most {max} values, each side at most 65535)", max = crate::frame::MAX_ELEMENTS)]
    BadShape(String),
    #[error("tensor holds a non-finite value ({value}) at index {index}; features must be finite")]
    NonFinite { index: usize, value: f32 },
    #[error("bits must be between 1 and 8, got {0}")]
    BadBits(u8),
    #[error("JPEG quality must be between 1 and 100, got {0}")]
    BadQuality(u8),
    #[error("unknown codec {0:?}; expected one of: jpeg, jpeg-abbrev, png, raw")]
    UnknownCodec(String),
    #[error("tiled image of {width}x{height} pixels exceeds the {codec} limit of 65535 per side; use fewer channels or a smaller feature map")]
    ImageTooLarge { codec: &'static str, width: usize, height: usize },
    #[error("frame is truncated: {needed} bytes needed, {got} present")]
    Truncated { needed: usize, got: usize },
    #[error("not a BottleNet frame (bad magic bytes)")]
    BadMagic,
    #[error("frame version {0} is not supported (this build reads versions 1 and 2)")]
    BadVersion(u8),
    #[error("a version-2 frame leaves shape and codec to its split's manifest; decode it with the split's spec (decode_with, or `frame inspect --shape .. --codec ..`)")]
    NeedsManifest,
    #[error("frame header is invalid: {0}")]
    BadHeader(String),
    #[error("frame checksum mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    BadChecksum { expected: u32, actual: u32 },
    #[error("frame payload is {payload} bytes but claims {pixels} pixels, more than that codec can carry in so few bytes")]
    ImplausibleSize { payload: usize, pixels: usize },
    #[error("corrupt {codec} payload: {reason}")]
    CorruptPayload { codec: &'static str, reason: String },
    #[error("a photo has 1 (grayscale) or 3 (RGB) channels, got {0}")]
    BadPhotoChannels(usize),
    #[error("photo of {width}x{height} pixels is outside baseline JPEG's limits (each side 1 to 65535)")]
    BadPhotoSize { width: usize, height: usize },
    #[error("JPEG photo is {found}, expected {expected}; refused before decoding its scan")]
    PhotoMismatch { found: String, expected: String },
    #[error("unknown chroma sampling {0:?}; expected one of: 420 (4:2:0), 444 (4:4:4)")]
    UnknownSampling(String),
    #[error("{codec} encoder failed: {reason}")]
    Encoder { codec: &'static str, reason: String },
}

/// Result of every fallible codec operation.
pub type Result<T> = std::result::Result<T, Error>;
