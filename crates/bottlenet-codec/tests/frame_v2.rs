//! Version-2 frames: the same pixels as version 1 for 14 fewer header bytes at the paper's
//! operating point; decoded only against their split's manifest; every lie refused; version-1
//! frames still decode through the same entry point.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use bottlenet_codec::synthetic::relu_like;
use bottlenet_codec::{
    CodecKind, CodecParams, Error, FeatureTensor, FrameSpec, HEADER_LEN, HEADER_LEN_V2_MIN, Shape, decode, decode_header_with,
    decode_with, encode, encode_v2,
};
use proptest::prelude::*;
use std::path::PathBuf;

fn spec(shape: Shape, params: CodecParams) -> FrameSpec {
    FrameSpec { shape, params }
}

fn tensor_strategy(max_side: usize) -> impl Strategy<Value = FeatureTensor> {
    (1..=8usize, 1..=max_side, 1..=max_side).prop_flat_map(|(c, h, w)| {
        prop::collection::vec(-50.0f32..50.0, c * h * w).prop_map(move |data| FeatureTensor { shape: Shape::new(c, h, w), data })
    })
}

fn params_of(codec_id: usize, quality: u8, bits: u8) -> CodecParams {
    CodecParams { codec: CodecKind::ALL[codec_id], quality, bits }.normalized()
}

proptest! {
    /// Reference: the version-1 frame of the same tensor. Same payload, same decoded values.
    #[test]
    fn v2_decodes_to_exactly_what_v1_decodes_to(tensor in tensor_strategy(20), codec_id in 0usize..4, quality in 1u8..=100, bits in 1u8..=8) {
        let params = params_of(codec_id, quality, bits);
        let s = spec(tensor.shape, params);
        let v1 = encode(&tensor, &params).unwrap();
        let v2 = encode_v2(&tensor, &params).unwrap();
        let payload = v1.len() - HEADER_LEN;
        let len_bytes = if payload < 128 { 1 } else if payload < 1 << 14 { 2 } else if payload < 1 << 21 { 3 } else { 4 };
        prop_assert_eq!(v2.len(), 9 + len_bytes + 4 + payload);
        prop_assert_eq!(&v2[v2.len() - payload..], &v1[HEADER_LEN..]);
        let header = decode_header_with(&v2, &s).unwrap();
        prop_assert_eq!(header.version, 2);
        prop_assert_eq!(header.frame_len(), v2.len());
        prop_assert_eq!(header.shape, tensor.shape);
        prop_assert_eq!(decode_with(&v2, &s).unwrap().data, decode(&v1).unwrap().data);
        // Version 1 goes through the same entry point.
        prop_assert_eq!(decode_with(&v1, &s).unwrap().data, decode(&v1).unwrap().data);
    }

    #[test]
    fn mutated_or_cut_v2_frames_never_panic(tensor in tensor_strategy(12), codec_id in 0usize..4, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let params = params_of(codec_id, 20, 8);
        let s = spec(tensor.shape, params);
        let mut frame = encode_v2(&tensor, &params).unwrap();
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        let _ = decode_with(&frame, &s);
        let _ = decode_with(&frame[..cut.index(frame.len())], &s);
    }

    #[test]
    fn arbitrary_bytes_against_a_spec_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_with(&bytes, &spec(Shape::new(1, 14, 14), CodecParams::paper()));
    }
}

fn paper_frame() -> (Vec<u8>, FrameSpec) {
    let shape = Shape::new(1, 14, 14);
    (encode_v2(&relu_like(shape, 7), &CodecParams::paper()).unwrap(), spec(shape, CodecParams::paper()))
}

#[test]
fn the_paper_operating_point_has_a_14_byte_header() {
    let (frame, s) = paper_frame();
    let header = decode_header_with(&frame, &s).unwrap();
    assert!(header.payload_len < 128, "{}", header.payload_len);
    assert_eq!(header.header_len, HEADER_LEN_V2_MIN);
}

#[test]
fn a_frame_decoded_against_another_manifest_fails_its_checksum() {
    let (frame, s) = paper_frame();
    let others = [
        spec(Shape::new(1, 14, 15), s.params),
        spec(Shape::new(4, 7, 7), s.params),
        spec(s.shape, CodecParams { quality: 21, ..s.params }),
        spec(s.shape, CodecParams { bits: 7, ..s.params }),
        spec(s.shape, CodecParams { codec: CodecKind::Jpeg, ..s.params }),
    ];
    for other in others {
        assert!(matches!(decode_with(&frame, &other), Err(Error::BadChecksum { .. })), "{other:?}");
    }
}

#[test]
fn plain_decode_asks_for_the_manifest() {
    let (frame, _) = paper_frame();
    let err = decode(&frame).unwrap_err();
    assert!(matches!(err, Error::NeedsManifest));
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn every_way_a_v2_frame_can_lie_is_refused() {
    let (frame, s) = paper_frame();
    assert!(matches!(decode_with(&[], &s), Err(Error::Truncated { .. })));
    assert!(matches!(decode_with(&frame[..10], &s), Err(Error::Truncated { .. })));
    assert!(matches!(decode_with(&frame[..frame.len() - 1], &s), Err(Error::Truncated { .. })));
    let mut longer = frame.clone();
    longer.push(0);
    assert!(matches!(decode_with(&longer, &s), Err(Error::BadHeader(_))));
    let mut flipped = frame.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(decode_with(&flipped, &s), Err(Error::BadChecksum { .. })));
    let mut nan = frame.clone();
    nan[1..5].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(decode_with(&nan, &s), Err(Error::BadHeader(_))));
    let mut version = frame;
    version[0] = 3;
    assert!(matches!(decode_with(&version, &s), Err(Error::BadMagic | Error::BadVersion(_) | Error::Truncated { .. })));
}

#[test]
fn a_spec_that_cannot_exist_is_refused_before_reading_the_frame() {
    let (frame, s) = paper_frame();
    let huge = spec(Shape::new(1, 70_000, 1), s.params);
    assert!(matches!(decode_with(&frame, &huge), Err(Error::BadShape(_) | Error::ImageTooLarge { .. })));
}

/// The bytes of a version-2 frame are part of the contract like version 1's (see golden.rs).
#[test]
fn the_v2_golden_frame_is_stable() {
    let shape = Shape::new(1, 28, 28);
    let frame = encode_v2(&relu_like(shape, 2019), &CodecParams::paper()).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/expected/v2_abbrev_1x28x28_q20.bin");
    if std::env::var_os("BOTTLENET_BLESS").is_some() {
        std::fs::write(&path, &frame).unwrap();
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run with BOTTLENET_BLESS=1 to create it", path.display()));
    assert_eq!(frame, expected, "version-2 frame bytes changed");
    // Same payload as the version-1 golden of the same tensor.
    let v1 = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/expected/abbrev_1x28x28_q20.bin")).unwrap();
    assert_eq!(&expected[expected.len() - (v1.len() - HEADER_LEN)..], &v1[HEADER_LEN..]);
}
