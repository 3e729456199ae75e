//! The wire frame, version 2: only what changes with every image (DESIGN §1). The split's
//! manifest fixes the shape, codec, quality and bits, so they stay home; eq. 1's min and max,
//! the payload length and a checksum travel.
//!
//! ```text
//! offset size field
//!      0    1 version (2); a version-1 frame starts with the magic "BN" (0x42), never 2
//!      1    4 min F (f32 LE)   5  4 max F (f32 LE)  — eq. 1 side information
//!      9  1–4 payload length, LEB128 (7 bits a byte, low first, shortest form only)
//!    9+k    4 CRC-32 (IEEE) of the split's fingerprint, bytes 0..9+k and the payload
//! ```
//!
//! The fingerprint is the manifest's codec id, quality, bits, C, H, W in version 1's header
//! layout ([`FrameSpec`]): the frame does not carry them, but its checksum does, so a frame
//! decoded against another split's manifest fails the checksum instead of decoding into
//! garbage. Header: 14 bytes for a payload under 128 B (the paper's operating point, ~42 B at
//! RB1 q20), 15 under 16 KiB; frame size = header + payload.

use crate::error::{Error, Result};
use crate::frame::{Encoded, FrameHeader, FrameSpec, check_plausible, encode_payload, u32_at};
use crate::tensor::FeatureTensor;
use crate::codec::CodecParams;

/// First byte of a version-2 frame.
pub const VERSION_V2: u8 = 2;
/// The shortest version-2 header (a payload under 128 bytes).
pub const HEADER_LEN_V2_MIN: usize = 14;
/// Longest LEB128 payload length: 4 bytes hold 2^28 − 1, more than any frame's payload
/// (at most [`crate::frame::MAX_ELEMENTS`] raw pixels, 2^24).
const MAX_LEN_BYTES: usize = 4;

fn put_leb128(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a shortest-form LEB128 length of at most [`MAX_LEN_BYTES`] bytes from `bytes`;
/// returns the value and the bytes it took.
fn get_leb128(bytes: &[u8]) -> Result<(usize, usize)> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().take(MAX_LEN_BYTES).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(Error::BadHeader("payload length is not in its shortest form".into()));
            }
            return Ok((value, i + 1));
        }
    }
    if bytes.len() < MAX_LEN_BYTES {
        return Err(Error::Truncated { needed: 9 + bytes.len() + 1, got: 9 + bytes.len() });
    }
    Err(Error::BadHeader(format!("payload length takes more than {MAX_LEN_BYTES} bytes")))
}

fn checksum(fingerprint: &[u8; 9], header: &[u8], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(fingerprint);
    crc.update(header);
    crc.update(payload);
    crc.finalize()
}

/// Encodes one sample into a version-2 frame for a split whose manifest fixes the tensor's
/// shape and `params` (eq. 1 → tiling §2.2 → codec, as [`crate::encode`]; only the header
/// differs). Decode it with [`crate::decode_with`] and the same [`FrameSpec`].
pub fn encode_v2(tensor: &FeatureTensor, params: &CodecParams) -> Result<Vec<u8>> {
    let spec = FrameSpec { shape: tensor.shape, params: *params };
    let Encoded { min, max, payload } = encode_payload(tensor, params)?;
    let fingerprint = spec.fingerprint()?;
    let len = u32::try_from(payload.len()).map_err(|_| Error::BadShape(tensor.shape.to_string()))?;
    let mut frame = Vec::with_capacity(HEADER_LEN_V2_MIN + 3 + payload.len());
    frame.push(VERSION_V2);
    frame.extend_from_slice(&min.to_le_bytes());
    frame.extend_from_slice(&max.to_le_bytes());
    put_leb128(&mut frame, len);
    let crc = checksum(&fingerprint, &frame, &payload);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Parses and checks a version-2 header for `spec`, without decoding the payload. Checks, in
/// order: version, length, min/max, the payload length is exactly what follows, the checksum
/// (which covers `spec`), and that the payload can hold the image `spec` claims.
pub(crate) fn decode_header_v2(frame: &[u8], spec: &FrameSpec) -> Result<FrameHeader> {
    let fingerprint = spec.fingerprint()?;
    match frame.first() {
        None => return Err(Error::Truncated { needed: HEADER_LEN_V2_MIN, got: 0 }),
        Some(&VERSION_V2) => {}
        Some(&other) => return Err(Error::BadVersion(other)),
    }
    if frame.len() < HEADER_LEN_V2_MIN {
        return Err(Error::Truncated { needed: HEADER_LEN_V2_MIN, got: frame.len() });
    }
    let f32_at = |at: usize| f32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let (min, max) = (f32_at(1), f32_at(5));
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return Err(Error::BadHeader(format!("min {min} / max {max} must be finite with min <= max")));
    }
    let (payload_len, len_bytes) = get_leb128(&frame[9..])?;
    let header_len = 9 + len_bytes + 4;
    if frame.len() < header_len {
        return Err(Error::Truncated { needed: header_len, got: frame.len() });
    }
    let present = frame.len() - header_len;
    if payload_len > present {
        return Err(Error::Truncated { needed: header_len + payload_len, got: frame.len() });
    }
    if payload_len < present {
        return Err(Error::BadHeader(format!("{} bytes follow a payload of {payload_len}", present - payload_len)));
    }
    let crc32 = u32_at(frame, header_len - 4);
    let actual = checksum(&fingerprint, &frame[..header_len - 4], &frame[header_len..]);
    if actual != crc32 {
        return Err(Error::BadChecksum { expected: crc32, actual });
    }
    let header = FrameHeader {
        version: VERSION_V2,
        params: spec.params.normalized(),
        shape: spec.shape,
        min,
        max,
        payload_len,
        crc32,
        header_len,
    };
    check_plausible(&header)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_round_trips_and_refuses_long_or_padded_forms() {
        for value in [0u32, 1, 127, 128, 300, 16_383, 16_384, (1 << 24) + 5, (1 << 28) - 1] {
            let mut out = Vec::new();
            put_leb128(&mut out, value);
            assert_eq!(get_leb128(&out).expect("reads"), (value as usize, out.len()), "{value}");
        }
        assert!(matches!(get_leb128(&[0x80, 0x00]), Err(Error::BadHeader(_))));
        assert!(matches!(get_leb128(&[0x80, 0x80, 0x80, 0x80, 0x01]), Err(Error::BadHeader(_))));
        assert!(matches!(get_leb128(&[0x80]), Err(Error::Truncated { .. })));
    }
}
