//! What the server checks about a request before it queues it: a frame's header against its
//! split's manifest (DESIGN §1: the manifest fixes shape, codec, quality and bits), so a frame
//! that claims another shape — say 1×4096×4096 — is refused for the price of parsing its
//! header and a CRC, never for the price of decoding its payload. A version-2 frame does not
//! carry those fields; its CRC covers them, so a frame made for another split fails it.
//!
//! The cloud-only path's JPEG is the model's to decode ([`crate::CloudHalf::decode_image`]);
//! its declared size is checked there, from the JPEG headers, before any pixel is decoded.

use bottlenet_codec::{FrameHeader, FrameSpec, VERSION_V2};

use crate::error::{Error, Result};

/// Parses `frame`'s header (structure and checksum only, no payload decoding) and checks it
/// against `spec`: shape first, then codec, quality and bits, each mismatch named.
pub(crate) fn check_frame(frame: &[u8], split: &str, spec: &FrameSpec) -> Result<FrameHeader> {
    let header = bottlenet_codec::decode_header_with(frame, spec)?;
    if header.version == VERSION_V2 {
        // Shape and codec came from `spec`, and the checksum that covers them held.
        return Ok(header);
    }
    if header.shape != spec.shape {
        return Err(Error::FrameShape {
            split: split.to_string(),
            got: header.shape.to_string(),
            expected: spec.shape.to_string(),
        });
    }
    let (got, want) = (header.params.normalized(), spec.params.normalized());
    let mismatch = |field: &'static str, got: String, expected: String| {
        Err(Error::FrameMismatch {
            split: split.to_string(),
            field,
            got,
            expected,
        })
    };
    if got.codec != want.codec {
        return mismatch("codec", got.codec.to_string(), want.codec.to_string());
    }
    if got.quality != want.quality {
        return mismatch("quality", got.quality.to_string(), want.quality.to_string());
    }
    if got.bits != want.bits {
        return mismatch("bits", got.bits.to_string(), want.bits.to_string());
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottlenet_codec::{CodecKind, CodecParams, FeatureTensor, HEADER_LEN, Shape};

    fn spec() -> FrameSpec {
        FrameSpec {
            shape: Shape::new(2, 14, 14),
            params: CodecParams::paper(),
        }
    }

    fn frame(shape: Shape, params: &CodecParams) -> Vec<u8> {
        let data = (0..shape.len()).map(|i| (i % 7) as f32).collect();
        let tensor = FeatureTensor::new(shape, data).expect("tensor");
        bottlenet_codec::encode(&tensor, params).expect("encode")
    }

    /// Replaces the payload with bytes no JPEG decoder accepts and fixes the CRC, so only a
    /// check that never decodes can get past the header with a header error.
    fn garbage_payload(mut frame: Vec<u8>) -> Vec<u8> {
        for b in &mut frame[HEADER_LEN..] {
            *b = 0xFF;
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&frame[..24]);
        crc.update(&frame[HEADER_LEN..]);
        let sum = crc.finalize().to_le_bytes();
        frame[24..28].copy_from_slice(&sum);
        frame
    }

    #[test]
    fn a_matching_frame_passes() {
        let header = check_frame(&frame(spec().shape, &CodecParams::paper()), "rb1", &spec())
            .expect("matches");
        assert_eq!(header.shape, spec().shape);
    }

    #[test]
    fn a_wrong_shape_with_an_undecodable_payload_gets_the_shape_error() {
        let f = garbage_payload(frame(Shape::new(4, 7, 7), &CodecParams::paper()));
        // The payload really is undecodable: a decode-first server would answer that instead.
        assert!(matches!(
            bottlenet_codec::decode(&f),
            Err(bottlenet_codec::Error::CorruptPayload { .. })
        ));
        let err = check_frame(&f, "rb1", &spec()).expect_err("wrong shape");
        assert!(matches!(&err, Error::FrameShape { got, .. } if got == "4x7x7"), "{err}");
    }

    #[test]
    fn codec_quality_and_bits_are_each_named() {
        let cases = [
            (CodecParams { quality: 50, ..CodecParams::paper() }, "quality"),
            (CodecParams { bits: 6, ..CodecParams::paper() }, "bits"),
            (CodecParams { codec: CodecKind::Jpeg, ..CodecParams::paper() }, "codec"),
            (CodecParams { codec: CodecKind::Raw, quality: 0, bits: 8 }, "codec"),
        ];
        for (params, field) in cases {
            let f = garbage_payload(frame(spec().shape, &params));
            let err = check_frame(&f, "rb1", &spec()).expect_err(field);
            assert!(
                matches!(&err, Error::FrameMismatch { field: named, .. } if *named == field),
                "{field}: {err}"
            );
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn a_v2_frame_passes_its_own_split_and_fails_another_on_its_checksum() {
        let data = (0..spec().shape.len()).map(|i| (i % 7) as f32).collect();
        let tensor = FeatureTensor::new(spec().shape, data).expect("tensor");
        let f = bottlenet_codec::encode_v2(&tensor, &CodecParams::paper()).expect("encode");
        assert_eq!(check_frame(&f, "rb1", &spec()).expect("matches").version, 2);
        let other = FrameSpec { shape: Shape::new(4, 7, 7), ..spec() };
        assert!(matches!(
            check_frame(&f, "rb4", &other),
            Err(Error::Frame(bottlenet_codec::Error::BadChecksum { .. }))
        ));
    }

    #[test]
    fn a_malformed_header_is_a_frame_error() {
        let mut f = frame(spec().shape, &CodecParams::paper());
        f[0] = b'X';
        assert!(matches!(check_frame(&f, "rb1", &spec()), Err(Error::Frame(_))));
    }
}
