//! Baseline grayscale JPEG (the paper's lossy compressor, §3.1) as a full stream and as an
//! abbreviated stream whose tables and markers both ends rebuild from the quality.
//!
//! A standard JPEG of a 28×28 feature image is ~75 % headers: SOI, JFIF APP0, two quantization
//! tables, the frame and scan headers and two Huffman tables. The encoder here always uses the
//! standard Annex K Huffman tables and quality-scaled quantization tables, so everything but the
//! entropy-coded scan is a function of (quality, width, height). The abbreviated payload is that
//! scan alone; the decoder re-creates the exact header the encoder wrote and decodes the full
//! stream, so its pixels are identical to decoding the full JPEG (tested).

use crate::codec::{GrayImage, ImageCodec};
use crate::error::{Error, Result};
use std::sync::OnceLock;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

const SOI: [u8; 2] = [0xFF, 0xD8];
const EOI: [u8; 2] = [0xFF, 0xD9];
const SOF0: u8 = 0xC0;
const SOS: u8 = 0xDA;

/// Full baseline JPEG at `quality` (1–100).
#[derive(Debug, Clone, Copy)]
pub struct Jpeg {
    pub quality: u8,
}

/// Abbreviated JPEG at `quality`: the entropy-coded scan only.
#[derive(Debug, Clone, Copy)]
pub struct AbbreviatedJpeg {
    pub quality: u8,
}

fn check_quality(quality: u8) -> Result<()> {
    if (1..=100).contains(&quality) { Ok(()) } else { Err(Error::BadQuality(quality)) }
}

fn check_size(width: usize, height: usize) -> Result<(u16, u16)> {
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(Error::ImageTooLarge { codec: "jpeg", width, height }),
    }
}

/// Encodes a full baseline JPEG with the standard Huffman tables (never optimized ones: those
/// would depend on the image and could not be left out of the abbreviated stream).
fn encode_full(image: &GrayImage, quality: u8) -> Result<Vec<u8>> {
    check_quality(quality)?;
    let (width, height) = check_size(image.width, image.height)?;
    let mut out = Vec::with_capacity(512 + image.pixels.len() / 4);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_optimized_huffman_tables(false);
    encoder
        .encode(&image.pixels, width, height, jpeg_encoder::ColorType::Luma)
        .map_err(|e| Error::Encoder { codec: "jpeg", reason: e.to_string() })?;
    Ok(out)
}

/// Decodes a full JPEG that must be `width × height` 8-bit grayscale.
fn decode_full(stream: &[u8], width: usize, height: usize, codec: &'static str) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::CorruptPayload { codec, reason };
    let options = DecoderOptions::new_safe()
        .set_max_width(width)
        .set_max_height(height)
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_strict_mode(true);
    // zune-jpeg is written to return errors on bad input; the unwind guard is a second line of
    // defence so that no byte string can take a server thread down.
    let decoded = std::panic::catch_unwind(|| {
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(stream, options);
        decoder.decode_headers().map_err(|e| format!("{e:?}"))?;
        let info = decoder.info().ok_or("no frame header")?;
        if (usize::from(info.width), usize::from(info.height)) != (width, height) {
            return Err(format!("holds a {}x{} image, frame says {width}x{height}", info.width, info.height));
        }
        if info.components != 1 {
            return Err(format!("has {} components, expected 1 (grayscale)", info.components));
        }
        decoder.decode().map_err(|e| format!("{e:?}"))
    });
    let pixels = match decoded {
        Ok(result) => result.map_err(corrupt)?,
        Err(_) => return Err(corrupt("decoder panicked".into())),
    };
    if pixels.len() != width * height {
        return Err(corrupt(format!("decoded {} pixels, expected {}", pixels.len(), width * height)));
    }
    Ok(pixels)
}

impl ImageCodec for Jpeg {
    fn encode(&self, image: &GrayImage) -> Result<Vec<u8>> {
        encode_full(image, self.quality)
    }
    fn decode(&self, payload: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
        decode_full(payload, width, height, "jpeg")
    }
}

/// The header (SOI … SOS) the encoder writes at one quality, with the SOF0 size fields located.
#[derive(Debug)]
struct AgreedHeader {
    bytes: Vec<u8>,
    /// Offset of SOF0's 16-bit height; the width follows it.
    size_offset: usize,
}

impl AgreedHeader {
    fn for_size(&self, width: u16, height: u16) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        bytes[self.size_offset..self.size_offset + 2].copy_from_slice(&height.to_be_bytes());
        bytes[self.size_offset + 2..self.size_offset + 4].copy_from_slice(&width.to_be_bytes());
        bytes
    }
}

/// Splits a stream the encoder wrote into (header through the SOS segment, offset of SOF0's size).
fn split_header(stream: &[u8]) -> Result<(usize, usize)> {
    let bad = |what: &str| Error::Encoder { codec: "jpeg-abbrev", reason: format!("unexpected encoder output: {what}") };
    if !stream.starts_with(&SOI) {
        return Err(bad("no SOI"));
    }
    let mut at = 2;
    let mut size_offset = None;
    loop {
        let marker = stream.get(at..at + 4).ok_or_else(|| bad("stream ends inside the header"))?;
        if marker[0] != 0xFF {
            return Err(bad("segment does not start with 0xFF"));
        }
        let length = usize::from(u16::from_be_bytes([marker[2], marker[3]]));
        if marker[1] == SOF0 {
            size_offset = Some(at + 5);
        }
        at += 2 + length;
        if marker[1] == SOS {
            let size_offset = size_offset.ok_or_else(|| bad("no SOF0 before SOS"))?;
            return if at <= stream.len() { Ok((at, size_offset)) } else { Err(bad("SOS past the end")) };
        }
    }
}

/// An abbreviated payload is one entropy-coded scan without restart intervals, so every 0xFF
/// in it must be a stuffed `FF 00` (ITU T.81 §F.1.2.3). Anything else is a marker smuggled into
/// the scan, or junk; refuse it before the decoder sees it.
fn check_entropy_coded(payload: &[u8]) -> Result<()> {
    let mut bytes = payload.iter().enumerate();
    while let Some((at, &byte)) = bytes.next() {
        if byte == 0xFF && !matches!(bytes.next(), Some((_, 0x00))) {
            return Err(Error::CorruptPayload { codec: "jpeg-abbrev", reason: format!("unstuffed 0xFF at payload byte {at}") });
        }
    }
    Ok(())
}

/// The agreed header for `quality`, computed once per quality per process from an 8×8 image.
fn agreed_header(quality: u8) -> Result<&'static AgreedHeader> {
    static HEADERS: [OnceLock<AgreedHeader>; 101] = [const { OnceLock::new() }; 101];
    check_quality(quality)?;
    let slot = &HEADERS[usize::from(quality)];
    if let Some(header) = slot.get() {
        return Ok(header);
    }
    let reference = encode_full(&GrayImage { width: 8, height: 8, pixels: vec![0; 64] }, quality)?;
    let (end, size_offset) = split_header(&reference)?;
    Ok(slot.get_or_init(|| AgreedHeader { bytes: reference[..end].to_vec(), size_offset }))
}

impl ImageCodec for AbbreviatedJpeg {
    fn encode(&self, image: &GrayImage) -> Result<Vec<u8>> {
        let stream = encode_full(image, self.quality)?;
        let (width, height) = check_size(image.width, image.height)?;
        let expected = agreed_header(self.quality)?.for_size(width, height);
        // Invariant the decoder relies on: everything before the scan is the agreed header.
        if !stream.starts_with(&expected) || !stream.ends_with(&EOI) {
            return Err(Error::Encoder {
                codec: "jpeg-abbrev",
                reason: "encoder wrote a header other than the agreed one for this quality".into(),
            });
        }
        Ok(stream[expected.len()..stream.len() - EOI.len()].to_vec())
    }

    fn decode(&self, payload: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
        check_entropy_coded(payload)?;
        let (w, h) = check_size(width, height)?;
        let header = agreed_header(self.quality)?.for_size(w, h);
        let mut stream = Vec::with_capacity(header.len() + payload.len() + EOI.len());
        stream.extend_from_slice(&header);
        stream.extend_from_slice(payload);
        stream.extend_from_slice(&EOI);
        decode_full(&stream, width, height, "jpeg-abbrev")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> GrayImage {
        let pixels = (0..width * height).map(|i| ((i * 7) % 251) as u8).collect();
        GrayImage { width, height, pixels }
    }

    #[test]
    fn abbreviated_decodes_to_the_same_pixels_as_full() {
        for (w, h, q) in [(28, 28, 20), (56, 28, 75), (13, 9, 1), (224, 112, 100)] {
            let image = gradient(w, h);
            let full = Jpeg { quality: q };
            let abbrev = AbbreviatedJpeg { quality: q };
            let full_bytes = full.encode(&image).unwrap();
            let abbrev_bytes = abbrev.encode(&image).unwrap();
            assert!(abbrev_bytes.len() < full_bytes.len());
            assert_eq!(full.decode(&full_bytes, w, h).unwrap(), abbrev.decode(&abbrev_bytes, w, h).unwrap());
        }
    }

    #[test]
    fn wrong_size_full_stream_is_refused() {
        let bytes = Jpeg { quality: 50 }.encode(&gradient(16, 16)).unwrap();
        assert!(Jpeg { quality: 50 }.decode(&bytes, 16, 8).is_err());
        assert!(Jpeg { quality: 50 }.decode(&bytes[..bytes.len() / 2], 16, 16).is_err());
    }
}
