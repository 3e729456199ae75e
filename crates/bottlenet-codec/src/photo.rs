//! Colour JPEG for the cloud-only input photo: what the phone uploads when no layer runs on it.
//!
//! DESIGN §1 ("Split points") has the cloud-only candidate send the input "as a phone would: a
//! colour JPEG, YCbCr 4:2:0"; the paper's Table 5 likewise JPEG-compresses "the input images which
//! are stored in 8-bit RGB format". Unlike the feature codecs (`jpeg.rs`: one grayscale plane of
//! tiles) this is a standard JFIF file: 3-channel images are converted to YCbCr and the chroma is
//! subsampled per [`ChromaSampling`]; 1-channel images become a plain grayscale JPEG. The whole
//! file, headers and tables included, is what travels and what is counted on the wire.
//!
//! Layout: pixels are planar CHW `u8` (channel 0 = R), as the runtime's `Image` and the model
//! input hold them; the codecs work in interleaved HWC, so both ends transpose.
//!
//! Invariants:
//! * Deterministic: the encoder (jpeg-encoder, `simd` off) is integer-only: RGB→YCbCr, box-average
//!   chroma downsampling and the forward DCT; the decoder (zune-jpeg 0.4, `neon` off) uses its
//!   integer IDCT, upsampler and YCbCr→RGB paths, scalar or (x86) their AVX2 ports, which give the
//!   same pixels (`tests/determinism.rs`). Same bytes → same pixels everywhere.
//! * [`decode_photo`] parses only the headers (SOI through SOS) before comparing the frame's size,
//!   channel count and process with what the caller expects, and refuses any difference before a
//!   single scan byte is decoded, so a frame claiming 4096×4096 costs the server nothing.
//! * A file must end with EOI: zune-jpeg would decode a truncated scan as if it were complete.
//! * Untrusted bytes give an [`Error`], never a panic.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Largest side a baseline JPEG can describe (SOF0 stores width and height as 16 bits).
pub const MAX_SIDE: usize = 65535;

const CODEC: &str = "photo-jpeg";
const EOI: [u8; 2] = [0xFF, 0xD9];

/// How the two chroma planes of a colour photo are sampled relative to luma.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ChromaSampling {
    /// Chroma at half resolution both ways: what a phone camera stack sends (DESIGN §1).
    #[default]
    #[serde(rename = "420", alias = "4:2:0")]
    Yuv420,
    /// Chroma at full resolution.
    #[serde(rename = "444", alias = "4:4:4")]
    Yuv444,
}

impl ChromaSampling {
    pub const ALL: [ChromaSampling; 2] = [ChromaSampling::Yuv420, ChromaSampling::Yuv444];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ChromaSampling::Yuv420 => "420",
            ChromaSampling::Yuv444 => "444",
        }
    }

    /// The conventional ratio spelling, `4:2:0` or `4:4:4`.
    pub fn ratio(self) -> &'static str {
        match self {
            ChromaSampling::Yuv420 => "4:2:0",
            ChromaSampling::Yuv444 => "4:4:4",
        }
    }

    /// Luma's sampling factors in the SOF0 header (chroma is 1×1): 2×2 means chroma is halved
    /// both ways (ITU T.81 §A.1.1).
    fn factor(self) -> jpeg_encoder::SamplingFactor {
        match self {
            ChromaSampling::Yuv420 => jpeg_encoder::SamplingFactor::F_2_2,
            ChromaSampling::Yuv444 => jpeg_encoder::SamplingFactor::F_1_1,
        }
    }
}

impl fmt::Display for ChromaSampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChromaSampling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s || k.ratio() == s)
            .ok_or_else(|| Error::UnknownSampling(s.to_string()))
    }
}

/// Baseline JFIF JPEG of a photo at `quality` 1–100 (the standard Annex K quantization tables
/// scaled as libjpeg does, standard Huffman tables). `sampling` applies to 3-channel photos only:
/// a grayscale photo has no chroma.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoJpeg {
    pub quality: u8,
    #[serde(default)]
    pub sampling: ChromaSampling,
}

/// Checks a photo's geometry; returns `(width, height, c·h·w)`.
fn check_photo(channels: usize, height: usize, width: usize) -> Result<(u16, u16, usize)> {
    if channels != 1 && channels != 3 {
        return Err(Error::BadPhotoChannels(channels));
    }
    let side = |n: usize| u16::try_from(n).ok().filter(|&n| n > 0);
    let (Some(w), Some(h)) = (side(width), side(height)) else {
        return Err(Error::BadPhotoSize { width, height });
    };
    // At most 3·65535² < 2^34: cannot overflow on 64-bit targets, checked for 32-bit ones.
    let len = channels
        .checked_mul(height)
        .and_then(|n| n.checked_mul(width))
        .ok_or(Error::BadPhotoSize { width, height })?;
    Ok((w, h, len))
}

fn describe(channels: usize, height: usize, width: usize) -> String {
    format!("{channels}x{height}x{width} (CxHxW)")
}

impl PhotoJpeg {
    /// `quality` with 4:2:0 chroma, the phone's default.
    pub fn new(quality: u8) -> Self {
        Self { quality, sampling: ChromaSampling::default() }
    }

    /// Encodes a planar CHW photo (`channels` 1 or 3, each side 1–65535,
    /// `pixels.len() == channels·height·width`) into a complete JPEG file.
    pub fn encode(&self, channels: usize, height: usize, width: usize, pixels: &[u8]) -> Result<Vec<u8>> {
        if !(1..=100).contains(&self.quality) {
            return Err(Error::BadQuality(self.quality));
        }
        let (w, h, len) = check_photo(channels, height, width)?;
        if pixels.len() != len {
            return Err(Error::ShapeMismatch { shape: describe(channels, height, width), len: pixels.len(), expected: len });
        }
        let (interleaved, color) = if channels == 3 {
            (chw_to_hwc(pixels, height * width), jpeg_encoder::ColorType::Rgb)
        } else {
            (pixels.to_vec(), jpeg_encoder::ColorType::Luma)
        };
        let mut out = Vec::with_capacity(640 + len / 8);
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, self.quality);
        // jpeg-encoder would pick 4:4:4 at q ≥ 90 by itself; the sampling is ours to choose.
        encoder.set_sampling_factor(self.sampling.factor());
        // Box-average each 2×2 chroma block like libjpeg's h2v2_downsample (a phone's encoder),
        // not jpeg-encoder's default top-left pick, which aliases.
        encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
        encoder.set_optimized_huffman_tables(false);
        encoder
            .encode(&interleaved, w, h, color)
            .map_err(|e| Error::Encoder { codec: CODEC, reason: e.to_string() })?;
        Ok(out)
    }
}

/// Decodes a JPEG photo that must be `channels × height × width` into planar CHW pixels.
///
/// The headers are read and compared first: a different size or channel count, or a
/// progressive frame, is refused with [`Error::PhotoMismatch`] before the scan is decoded; a file
/// that does not end with EOI (truncated, or trailing data) is refused as corrupt, also before
/// the scan. Any chroma sampling is accepted (the decoder upsamples it). The caller's expected
/// size bounds the memory spent: `channels·height·width` bytes plus the decoder's row buffers.
pub fn decode_photo(bytes: &[u8], channels: usize, height: usize, width: usize) -> Result<Vec<u8>> {
    let (_, _, len) = check_photo(channels, height, width)?;
    let corrupt = |reason: String| Error::CorruptPayload { codec: CODEC, reason };
    let out_colorspace = if channels == 3 { ColorSpace::RGB } else { ColorSpace::Luma };
    // The decoder's own limits are set to what SOF0 can hold, not to the expected size, so that a
    // wrong size is reported as the mismatch below; parsing the headers allocates nothing that
    // grows with the claimed size (zune-jpeg 0.4 `parse_start_of_frame`).
    let options = DecoderOptions::new_safe()
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE)
        .jpeg_set_out_colorspace(out_colorspace)
        .set_strict_mode(true);
    // zune-jpeg is written to return errors on bad input; the unwind guard is a second line of
    // defence so that no byte string can take a server thread down (as in `jpeg.rs`).
    let decoded = std::panic::catch_unwind(|| -> Result<Vec<u8>> {
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(bytes, options);
        decoder.decode_headers().map_err(|e| corrupt(format!("{e:?}")))?;
        let info = decoder.info().ok_or_else(|| corrupt("no frame header".into()))?;
        let found = (usize::from(info.components), usize::from(info.height), usize::from(info.width));
        // zune-jpeg 0.4 gets past the headers only for SOF0–SOF2; SOF2 (progressive) is refused:
        // the phone sends baseline, and a progressive scan costs the server far more to decode.
        let sequential = info.sof.is_sequential_dct();
        if found != (channels, height, width) || !sequential {
            return Err(Error::PhotoMismatch {
                found: format!("{} {}", describe(found.0, found.1, found.2), if sequential { "sequential" } else { "progressive" }),
                expected: format!("{} sequential", describe(channels, height, width)),
            });
        }
        // zune-jpeg fills a scan that ends early with zeros, even in strict mode, and returns Ok;
        // a complete file ends with EOI, and no prefix cut inside the scan can (there 0xFF is
        // followed only by 0x00 or a restart marker: ITU T.81 §B.1.1.5), while a cut inside the
        // headers failed above: so every truncation is refused.
        if !bytes.ends_with(&EOI) {
            return Err(corrupt("does not end with the EOI marker (truncated, or data after the image)".into()));
        }
        decoder.decode().map_err(|e| corrupt(format!("{e:?}")))
    });
    let interleaved = match decoded {
        Ok(result) => result?,
        Err(_) => return Err(corrupt("decoder panicked".into())),
    };
    if interleaved.len() != len {
        return Err(corrupt(format!("decoded {} bytes, expected {len}", interleaved.len())));
    }
    Ok(if channels == 3 { hwc_to_chw(&interleaved, height * width) } else { interleaved })
}

/// Planar `[R…][G…][B…]` to interleaved `RGBRGB…`. `pixels.len() == 3·plane`.
fn chw_to_hwc(pixels: &[u8], plane: usize) -> Vec<u8> {
    let (r, rest) = pixels.split_at(plane);
    let (g, b) = rest.split_at(plane);
    r.iter().zip(g).zip(b).flat_map(|((&r, &g), &b)| [r, g, b]).collect()
}

/// Interleaved `RGBRGB…` to planar `[R…][G…][B…]`. `pixels.len() == 3·plane`.
fn hwc_to_chw(pixels: &[u8], plane: usize) -> Vec<u8> {
    let mut out = vec![0; pixels.len()];
    for (i, rgb) in pixels.chunks_exact(3).enumerate() {
        out[i] = rgb[0];
        out[plane + i] = rgb[1];
        out[2 * plane + i] = rgb[2];
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    #[test]
    fn sampling_names_parse_both_spellings() {
        for s in ChromaSampling::ALL {
            assert_eq!(s.name().parse::<ChromaSampling>().unwrap(), s);
            assert_eq!(s.ratio().parse::<ChromaSampling>().unwrap(), s);
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!("4:2:0".parse::<ChromaSampling>().unwrap(), ChromaSampling::Yuv420);
        assert!(matches!("422".parse::<ChromaSampling>(), Err(Error::UnknownSampling(_))));
        assert_eq!(ChromaSampling::default(), ChromaSampling::Yuv420);
    }

    #[test]
    fn serde_uses_the_names_and_defaults_to_420() {
        let json = serde_json::to_string(&PhotoJpeg { quality: 50, sampling: ChromaSampling::Yuv444 }).unwrap();
        assert_eq!(json, r#"{"quality":50,"sampling":"444"}"#);
        let back: PhotoJpeg = serde_json::from_str(r#"{"quality":20}"#).unwrap();
        assert_eq!(back, PhotoJpeg::new(20));
        let ratio: PhotoJpeg = serde_json::from_str(r#"{"quality":20,"sampling":"4:4:4"}"#).unwrap();
        assert_eq!(ratio.sampling, ChromaSampling::Yuv444);
        assert!(serde_json::from_str::<PhotoJpeg>(r#"{"quality":20,"subsampling":"444"}"#).is_err());
    }

    #[test]
    fn planes_transpose_and_back() {
        let chw: Vec<u8> = (0..12).collect();
        let hwc = chw_to_hwc(&chw, 4);
        assert_eq!(hwc, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
        assert_eq!(hwc_to_chw(&hwc, 4), chw);
    }

    #[test]
    fn limits_are_checked_before_the_encoder() {
        let q = PhotoJpeg::new(50);
        assert!(matches!(PhotoJpeg::new(0).encode(1, 8, 8, &[0; 64]), Err(Error::BadQuality(0))));
        assert!(matches!(PhotoJpeg::new(101).encode(1, 8, 8, &[0; 64]), Err(Error::BadQuality(101))));
        assert!(matches!(q.encode(2, 8, 8, &[0; 128]), Err(Error::BadPhotoChannels(2))));
        assert!(matches!(q.encode(4, 8, 8, &[0; 256]), Err(Error::BadPhotoChannels(4))));
        assert!(matches!(q.encode(1, 0, 8, &[]), Err(Error::BadPhotoSize { .. })));
        assert!(matches!(q.encode(1, 8, MAX_SIDE + 1, &[]), Err(Error::BadPhotoSize { .. })));
        assert!(matches!(q.encode(3, 8, 8, &[0; 64]), Err(Error::ShapeMismatch { len: 64, expected: 192, .. })));
        assert!(matches!(decode_photo(&[], 2, 8, 8), Err(Error::BadPhotoChannels(2))));
        assert!(matches!(decode_photo(&[], 3, 8, 0), Err(Error::BadPhotoSize { .. })));
    }
}
