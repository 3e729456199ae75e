//! The image codecs a tiled feature image can travel in, behind one trait.

use crate::error::{Error, Result};
use crate::jpeg::{AbbreviatedJpeg, Jpeg};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An 8-bit grayscale image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Turns a grayscale image into payload bytes and back.
///
/// Invariants: `encode` and `decode` are deterministic and give the same bytes and pixels on every
/// machine (only SIMD paths proven to match the scalar code: see the workspace's zune-jpeg and
/// jpeg-encoder features and `tests/determinism.rs`); `decode` of
/// untrusted bytes returns an error, never panics, and never yields other than `width·height` pixels.
pub trait ImageCodec {
    fn encode(&self, image: &GrayImage) -> Result<Vec<u8>>;
    fn decode(&self, payload: &[u8], width: usize, height: usize) -> Result<Vec<u8>>;
}

/// Which codec carries the tiled image. The discriminant is the wire id in the frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodecKind {
    /// Uncompressed 8-bit pixels.
    Raw = 0,
    /// Lossless PNG.
    Png = 1,
    /// Baseline grayscale JPEG, the full standard stream (tables and headers included).
    Jpeg = 2,
    /// The same JPEG with its tables and markers left out: both ends know them from the quality.
    JpegAbbrev = 3,
}

impl CodecKind {
    pub const ALL: [CodecKind; 4] = [CodecKind::Raw, CodecKind::Png, CodecKind::Jpeg, CodecKind::JpegAbbrev];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Raw => "raw",
            CodecKind::Png => "png",
            CodecKind::Jpeg => "jpeg",
            CodecKind::JpegAbbrev => "jpeg-abbrev",
        }
    }

    /// True for the lossy codecs that take a quality.
    pub fn is_jpeg(self) -> bool {
        matches!(self, CodecKind::Jpeg | CodecKind::JpegAbbrev)
    }

    pub(crate) fn from_wire(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u8 == id)
    }

    /// The codec implementation at `quality` (ignored by the lossless codecs).
    pub fn codec(self, quality: u8) -> Box<dyn ImageCodec> {
        match self {
            CodecKind::Raw => Box::new(Raw),
            CodecKind::Png => Box::new(Png),
            CodecKind::Jpeg => Box::new(Jpeg { quality }),
            CodecKind::JpegAbbrev => Box::new(AbbreviatedJpeg { quality }),
        }
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CodecKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownCodec(s.to_string()))
    }
}

/// How a feature tensor is put on the wire: codec, JPEG quality, quantizer bits (eq. 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodecParams {
    pub codec: CodecKind,
    /// JPEG quality 1–100; 0 for the lossless codecs.
    pub quality: u8,
    /// Quantizer bits n, 1–8.
    pub bits: u8,
}

impl CodecParams {
    /// The paper's operating point (§3.3): JPEG quality 20, 8-bit quantization; abbreviated stream.
    pub fn paper() -> Self {
        Self { codec: CodecKind::JpegAbbrev, quality: 20, bits: 8 }
    }

    /// Checks the parameters; lossless codecs must carry quality 0.
    pub fn validate(&self) -> Result<()> {
        crate::quantize::check_bits(self.bits)?;
        if self.codec.is_jpeg() {
            if !(1..=100).contains(&self.quality) {
                return Err(Error::BadQuality(self.quality));
            }
        } else if self.quality != 0 {
            return Err(Error::BadHeader(format!("{} is lossless and takes quality 0, got {}", self.codec, self.quality)));
        }
        Ok(())
    }

    /// `self` with the quality forced to 0 for the lossless codecs (convenient for CLI input).
    pub fn normalized(mut self) -> Self {
        if !self.codec.is_jpeg() {
            self.quality = 0;
        }
        self
    }
}

/// Uncompressed pixels.
#[derive(Debug, Clone, Copy)]
pub struct Raw;

impl ImageCodec for Raw {
    fn encode(&self, image: &GrayImage) -> Result<Vec<u8>> {
        Ok(image.pixels.clone())
    }
    fn decode(&self, payload: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
        if payload.len() != width * height {
            return Err(Error::CorruptPayload {
                codec: "raw",
                reason: format!("{} bytes for a {width}x{height} image", payload.len()),
            });
        }
        Ok(payload.to_vec())
    }
}

/// Lossless PNG through the `png` crate.
#[derive(Debug, Clone, Copy)]
pub struct Png;

impl ImageCodec for Png {
    fn encode(&self, image: &GrayImage) -> Result<Vec<u8>> {
        let enc_err = |e: png::EncodingError| Error::Encoder { codec: "png", reason: e.to_string() };
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, image.width as u32, image.height as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header().map_err(enc_err)?;
        writer.write_image_data(&image.pixels).map_err(enc_err)?;
        writer.finish().map_err(enc_err)?;
        Ok(out)
    }

    fn decode(&self, payload: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
        let corrupt = |reason: String| Error::CorruptPayload { codec: "png", reason };
        let mut decoder = png::Decoder::new(std::io::Cursor::new(payload));
        // Never allocate more than the frame header's own image size (checked below too).
        decoder.set_limits(png::Limits { bytes: width * height + 1024 });
        let mut reader = decoder.read_info().map_err(|e| corrupt(e.to_string()))?;
        let info = reader.info();
        if (info.width as usize, info.height as usize) != (width, height)
            || info.color_type != png::ColorType::Grayscale
            || info.bit_depth != png::BitDepth::Eight
        {
            return Err(corrupt(format!(
                "holds a {}x{} {:?}/{:?} image, frame says {width}x{height} 8-bit grayscale",
                info.width, info.height, info.color_type, info.bit_depth
            )));
        }
        let size = reader.output_buffer_size().ok_or_else(|| corrupt("image too large".into()))?;
        let mut pixels = vec![0; size];
        let frame = reader.next_frame(&mut pixels).map_err(|e| corrupt(e.to_string()))?;
        pixels.truncate(frame.buffer_size());
        if pixels.len() != width * height {
            return Err(corrupt(format!("decoded {} pixels, expected {}", pixels.len(), width * height)));
        }
        Ok(pixels)
    }
}
