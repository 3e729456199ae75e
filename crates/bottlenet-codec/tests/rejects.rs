//! Regression tests: every way a frame can lie is refused with the right typed error.

use bottlenet_codec::synthetic::relu_like;
use bottlenet_codec::{CodecKind, CodecParams, Error, FeatureTensor, HEADER_LEN, Shape, decode, encode};

fn frame() -> Vec<u8> {
    encode(&relu_like(Shape::new(2, 28, 28), 1), &CodecParams::paper()).expect("encode")
}

/// Re-seals the CRC after a header edit so the check under test is the one that fires.
fn reseal(mut f: Vec<u8>) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&f[..24]);
    crc.update(&f[HEADER_LEN..]);
    let sum = crc.finalize().to_le_bytes();
    f[24..28].copy_from_slice(&sum);
    f
}

#[test]
fn truncated_frames() {
    let f = frame();
    assert!(matches!(decode(&f[..10]), Err(Error::Truncated { .. })));
    assert!(matches!(decode(&f[..f.len() - 1]), Err(Error::Truncated { .. })));
    assert!(matches!(decode(&[]), Err(Error::Truncated { .. })));
}

#[test]
fn wrong_magic_and_version() {
    let mut f = frame();
    f[0] = b'X';
    assert!(matches!(decode(&f), Err(Error::BadMagic)));
    let mut f = frame();
    f[2] = 9;
    assert!(matches!(decode(&f), Err(Error::BadVersion(9))));
}

#[test]
fn lying_lengths() {
    let mut f = frame();
    f.push(0);
    assert!(matches!(decode(&f), Err(Error::BadHeader(_))));
    let mut f = frame();
    f[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode(&f), Err(Error::Truncated { .. })));
}

#[test]
fn huge_dimensions_are_refused_before_allocating() {
    let mut f = frame();
    for at in [6, 8, 10] {
        f[at..at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
    }
    assert!(matches!(decode(&reseal(f)), Err(Error::BadShape(_) | Error::ImageTooLarge { .. })));
    // plausible limits, but far more pixels than ~100 bytes of scan data can describe
    let mut f = frame();
    f[8..10].copy_from_slice(&2000u16.to_le_bytes());
    f[10..12].copy_from_slice(&2000u16.to_le_bytes());
    assert!(matches!(decode(&reseal(f)), Err(Error::ImplausibleSize { .. })));
}

#[test]
fn bad_checksum() {
    let mut f = frame();
    let last = f.len() - 1;
    f[last] ^= 0x55;
    assert!(matches!(decode(&f), Err(Error::BadChecksum { .. })));
}

#[test]
fn bad_fields() {
    for (at, value) in [(3usize, 77u8), (4, 0), (4, 101), (5, 0), (5, 9)] {
        let mut f = frame();
        f[at] = value;
        assert!(decode(&reseal(f)).is_err(), "byte {at} = {value} accepted");
    }
    let mut f = frame();
    f[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(decode(&reseal(f)), Err(Error::BadHeader(_))));
}

#[test]
fn corrupt_jpeg_payload() {
    let f = frame();
    let mut g = f.clone();
    for b in &mut g[HEADER_LEN..] {
        *b = 0xFF;
    }
    assert!(matches!(decode(&reseal(g)), Err(Error::CorruptPayload { .. })));
}

#[test]
fn encoder_refuses_bad_input() {
    let shape = Shape::new(1, 2, 2);
    let nan = FeatureTensor { shape, data: vec![0.0, f32::NAN, 1.0, 2.0] };
    assert!(matches!(encode(&nan, &CodecParams::paper()), Err(Error::NonFinite { index: 1, .. })));
    let ok = FeatureTensor { shape, data: vec![0.0; 4] };
    assert!(matches!(encode(&ok, &CodecParams { codec: CodecKind::Jpeg, quality: 0, bits: 8 }), Err(Error::BadQuality(0))));
    assert!(FeatureTensor::new(shape, vec![0.0; 3]).is_err());
}

