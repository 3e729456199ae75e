//! The wire frame, version 1: a fixed 28-byte little-endian header followed by the codec
//! payload. It carries everything needed to decode it. Version 2 ([`crate::frame_v2`]) leaves
//! out what the split's manifest fixes; [`decode_with`] reads both.
//!
//! ```text
//! offset size field
//!      0    2 magic "BN"
//!      2    1 version (1)
//!      3    1 codec id (CodecKind discriminant)
//!      4    1 JPEG quality (0 for lossless codecs)
//!      5    1 quantizer bits n (eq. 1)
//!      6    2 channels C      8  2 height H     10  2 width W
//!     12    4 min F (f32)    16  4 max F (f32)  — eq. 1 side information
//!     20    4 payload length
//!     24    4 CRC-32 (IEEE) of bytes 0..24 and the payload
//! ```
//! Every byte on the wire is counted: frame size = 28 + payload.

use crate::codec::{CodecKind, CodecParams, GrayImage};
use crate::error::{Error, Result};
use crate::quantize::{level_to_pixel, level_values, pixel_to_level, quantize};
use crate::tensor::{FeatureTensor, Shape};
use crate::tile::{TileGrid, tile, untile};

pub const MAGIC: [u8; 2] = *b"BN";
pub const VERSION: u8 = 1;
/// Header bytes of a version-1 frame.
pub const HEADER_LEN: usize = 28;
/// Largest tensor a frame may carry (values): 16 Mi, i.e. 64 MiB of f32 after decoding.
pub const MAX_ELEMENTS: usize = 1 << 24;

/// The decoded header of a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameHeader {
    pub version: u8,
    pub params: CodecParams,
    pub shape: Shape,
    pub min: f32,
    pub max: f32,
    pub payload_len: usize,
    pub crc32: u32,
    /// Bytes before the payload: [`HEADER_LEN`] in version 1, 14–17 in version 2.
    pub header_len: usize,
}

/// What a split's manifest fixes about every frame it sends (DESIGN §1): the feature shape,
/// codec, quality and quantizer bits. A version-2 frame leaves these out and is decoded
/// against them; a version-1 frame carries them and is checked against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSpec {
    pub shape: Shape,
    pub params: CodecParams,
}

impl FrameSpec {
    /// The spec's fields in version 1's header layout (codec, quality, bits, C, H, W): the
    /// bytes a version-2 checksum covers besides the frame itself.
    pub(crate) fn fingerprint(&self) -> Result<[u8; 9]> {
        let params = self.params.normalized();
        params.validate()?;
        check_shape(&self.shape)?;
        let mut out = [0u8; 9];
        out[..3].copy_from_slice(&[params.codec as u8, params.quality, params.bits]);
        for (i, side) in [self.shape.channels, self.shape.height, self.shape.width].into_iter().enumerate() {
            out[3 + 2 * i..5 + 2 * i].copy_from_slice(&(side as u16).to_le_bytes());
        }
        Ok(out)
    }
}

impl FrameHeader {
    /// Total bytes of the frame on the wire, header included.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Pixel size of the tiled image this frame's payload holds.
    pub fn image_size(&self) -> (usize, usize) {
        TileGrid::for_channels(self.shape.channels).image_size(&self.shape)
    }
}

/// Checks a shape can travel in a frame: non-empty, ≤ [`MAX_ELEMENTS`], sides and the tiled
/// image ≤ 65535 pixels (the JPEG limit, applied to every codec so any frame can be re-coded).
pub(crate) fn check_shape(shape: &Shape) -> Result<()> {
    let sides_fit = [shape.channels, shape.height, shape.width].iter().all(|&s| (1..=u16::MAX as usize).contains(&s));
    if !sides_fit || shape.len() > MAX_ELEMENTS {
        return Err(Error::BadShape(shape.to_string()));
    }
    let (width, height) = TileGrid::for_channels(shape.channels).image_size(shape);
    if width > u16::MAX as usize || height > u16::MAX as usize {
        return Err(Error::ImageTooLarge { codec: "frame", width, height });
    }
    Ok(())
}

/// What every frame version carries per image: eq. 1's side information and the payload.
pub(crate) struct Encoded {
    pub min: f32,
    pub max: f32,
    pub payload: Vec<u8>,
}

/// Quantize (eq. 1) → tile (§2.2) → codec: the part of a frame that changes with every image.
pub(crate) fn encode_payload(tensor: &FeatureTensor, params: &CodecParams) -> Result<Encoded> {
    params.validate()?;
    let shape = tensor.shape;
    check_shape(&shape)?;
    if tensor.data.len() != shape.len() {
        return Err(Error::ShapeMismatch { shape: shape.to_string(), len: tensor.data.len(), expected: shape.len() });
    }
    let quantized = quantize(&tensor.data, params.bits)?;
    let pixels = if params.bits == 8 {
        quantized.levels // level_to_pixel is the identity at 8 bits
    } else {
        let table: [u8; 256] = std::array::from_fn(|level| level_to_pixel(level as u8, params.bits));
        quantized.levels.iter().map(|&l| table[usize::from(l)]).collect()
    };
    let (width, height) = TileGrid::for_channels(shape.channels).image_size(&shape);
    let image = GrayImage { width, height, pixels: tile(&pixels, &shape) };
    let payload = params.codec.codec(params.quality).encode(&image)?;
    Ok(Encoded { min: quantized.min, max: quantized.max, payload })
}

/// Encodes one sample into a version-1 wire frame: quantize (eq. 1) → tile (§2.2) → codec →
/// header. The phone sends version 2 ([`crate::frame_v2::encode_v2`]); version 1 stays for
/// files and tools that must decode without a manifest.
pub fn encode(tensor: &FeatureTensor, params: &CodecParams) -> Result<Vec<u8>> {
    let shape = tensor.shape;
    let Encoded { min, max, payload } = encode_payload(tensor, params)?;
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&[VERSION, params.codec as u8, params.quality, params.bits]);
    for side in [shape.channels, shape.height, shape.width] {
        frame.extend_from_slice(&(side as u16).to_le_bytes());
    }
    frame.extend_from_slice(&min.to_le_bytes());
    frame.extend_from_slice(&max.to_le_bytes());
    let payload_len = u32::try_from(payload.len()).map_err(|_| Error::BadShape(shape.to_string()))?;
    frame.extend_from_slice(&payload_len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&frame);
    crc.update(&payload);
    frame.extend_from_slice(&crc.finalize().to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

pub(crate) fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses and checks a version-1 frame's header against its bytes, without decoding the
/// payload. A version-2 frame is refused with [`Error::NeedsManifest`]: use
/// [`decode_header_with`].
///
/// Checks, in order: length, magic, version, codec, quality, bits, shape limits, min/max, that
/// the payload length is exactly what follows the header, the CRC, and that the payload is large
/// enough to hold the image it claims (so a tiny frame cannot make the decoder allocate much).
pub fn decode_header(frame: &[u8]) -> Result<FrameHeader> {
    if frame.first() == Some(&crate::frame_v2::VERSION_V2) {
        return Err(Error::NeedsManifest);
    }
    if frame.len() < HEADER_LEN {
        if frame.len() >= 2 && frame[..2] != MAGIC {
            return Err(Error::BadMagic);
        }
        return Err(Error::Truncated { needed: HEADER_LEN, got: frame.len() });
    }
    if frame[..2] != MAGIC {
        return Err(Error::BadMagic);
    }
    if frame[2] != VERSION {
        return Err(Error::BadVersion(frame[2]));
    }
    let codec = CodecKind::from_wire(frame[3]).ok_or_else(|| Error::BadHeader(format!("unknown codec id {}", frame[3])))?;
    let params = CodecParams { codec, quality: frame[4], bits: frame[5] };
    params.validate()?;
    let shape = Shape::new(usize::from(u16_at(frame, 6)), usize::from(u16_at(frame, 8)), usize::from(u16_at(frame, 10)));
    check_shape(&shape)?;
    let min = f32::from_le_bytes(frame[12..16].try_into().map_err(|_| Error::BadHeader("min".into()))?);
    let max = f32::from_le_bytes(frame[16..20].try_into().map_err(|_| Error::BadHeader("max".into()))?);
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return Err(Error::BadHeader(format!("min {min} / max {max} must be finite with min <= max")));
    }
    let payload_len = u32_at(frame, 20) as usize;
    let present = frame.len() - HEADER_LEN;
    if payload_len > present {
        return Err(Error::Truncated { needed: HEADER_LEN + payload_len, got: frame.len() });
    }
    if payload_len < present {
        return Err(Error::BadHeader(format!("{} bytes follow a payload of {payload_len}", present - payload_len)));
    }
    let crc32 = u32_at(frame, 24);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[..24]);
    hasher.update(&frame[HEADER_LEN..]);
    let actual = hasher.finalize();
    if actual != crc32 {
        return Err(Error::BadChecksum { expected: crc32, actual });
    }
    let header = FrameHeader { version: VERSION, params, shape, min, max, payload_len, crc32, header_len: HEADER_LEN };
    check_plausible(&header)?;
    Ok(header)
}

/// Parses and checks a frame of either version, without decoding its payload, for a split
/// whose manifest says `spec`. A version-2 header takes shape and codec from `spec` (its
/// checksum covers them, so a frame made for another manifest fails it); a version-1 header
/// brings its own, which the caller compares with `spec` (the server does, naming the field).
pub fn decode_header_with(frame: &[u8], spec: &FrameSpec) -> Result<FrameHeader> {
    match frame.first() {
        Some(&crate::frame_v2::VERSION_V2) => crate::frame_v2::decode_header_v2(frame, spec),
        _ => decode_header(frame),
    }
}

/// The smallest payload that can hold the claimed image, per codec:
/// raw needs every pixel; PNG's deflate cannot beat ~1032:1; a baseline JPEG block costs at
/// least 6 bits with the standard tables (DC "00" + EOB "1010") that the abbreviated stream
/// uses, and at least 2 bits with any tables a full stream could bring.
pub(crate) fn check_plausible(header: &FrameHeader) -> Result<()> {
    let (width, height) = header.image_size();
    let pixels = width * height;
    let payload = header.payload_len;
    let blocks = width.div_ceil(8) * height.div_ceil(8);
    let plausible = match header.params.codec {
        CodecKind::Raw => payload == pixels,
        CodecKind::Png => pixels <= payload.saturating_mul(1100),
        CodecKind::Jpeg => blocks * 2 <= payload * 8,
        CodecKind::JpegAbbrev => blocks * 6 <= payload * 8 + 7,
    };
    if plausible { Ok(()) } else { Err(Error::ImplausibleSize { payload, pixels }) }
}

/// Decodes a version-1 wire frame back into the sample it carries: header → codec → untile →
/// dequantize. Never panics; any malformed input is a typed [`Error`] (a version-2 frame is
/// [`Error::NeedsManifest`]: use [`decode_with`]).
pub fn decode(frame: &[u8]) -> Result<FeatureTensor> {
    decode_payload(&decode_header(frame)?, frame)
}

/// Decodes a frame of either version for a split whose manifest says `spec` (see
/// [`decode_header_with`]). A version-1 frame's own header decides how it decodes.
pub fn decode_with(frame: &[u8], spec: &FrameSpec) -> Result<FeatureTensor> {
    decode_payload(&decode_header_with(frame, spec)?, frame)
}

/// Codec → untile → dequantize of a frame whose header is checked.
fn decode_payload(header: &FrameHeader, frame: &[u8]) -> Result<FeatureTensor> {
    let (width, height) = header.image_size();
    let payload = &frame[header.header_len..];
    let image = header.params.codec.codec(header.params.quality).decode(payload, width, height)?;
    let bits = header.params.bits;
    // pixel → level → value (eq. 1 inverse) for each of the 256 pixels, then one lookup per value.
    let levels = level_values(bits, header.min, header.max);
    let values: [f32; 256] = std::array::from_fn(|pixel| levels[usize::from(pixel_to_level(pixel as u8, bits))]);
    let data = untile(&image, &header.shape).into_iter().map(|p| values[usize::from(p)]).collect();
    FeatureTensor::new(header.shape, data)
}

/// Encodes and decodes each sample of a batch (N×C×H×W row-major), as the server would see it.
/// Returns the decoded values (same layout) and each sample's frame size in bytes: the
/// version-2 frame the phone sends (DESIGN §1: `D_j` counts what travels).
pub fn roundtrip_batch(data: &[f32], batch: usize, shape: Shape, params: &CodecParams) -> Result<(Vec<f32>, Vec<usize>)> {
    let per_sample = shape.len();
    if data.len() != batch * per_sample {
        return Err(Error::ShapeMismatch { shape: format!("{batch}x{shape}"), len: data.len(), expected: batch * per_sample });
    }
    let mut decoded = Vec::with_capacity(data.len());
    let mut sizes = Vec::with_capacity(batch);
    for sample in data.chunks_exact(per_sample.max(1)).take(batch) {
        let frame = crate::frame_v2::encode_v2(&FeatureTensor { shape, data: sample.to_vec() }, params)?;
        sizes.push(frame.len());
        decoded.extend(decode_with(&frame, &FrameSpec { shape, params: *params })?.data);
    }
    Ok((decoded, sizes))
}
