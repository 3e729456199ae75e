//! Golden frames: the bytes of fixed tensors' frames must not change between builds or machines
//! (the server decodes what the phone's encoder wrote, possibly built elsewhere).
//! Rewrite them only on purpose: `BOTTLENET_BLESS=1 cargo test -p bottlenet-codec --test golden`.

use bottlenet_codec::synthetic::relu_like;
use bottlenet_codec::{CodecKind, CodecParams, Shape, decode, encode};
use std::path::PathBuf;

/// `exact_bytes`: JPEG streams are fixed by our tables and the scalar encoder, so their bytes are the
/// contract; a PNG's deflate stream may differ with the png crate's build features (the
/// workspace's `image` dependency switches its compressor), so for PNG the decoded values are.
fn check_golden(name: &str, shape: Shape, params: CodecParams, exact_bytes: bool) {
    let frame = encode(&relu_like(shape, 2019), &params).expect("encode");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/expected").join(name);
    if std::env::var_os("BOTTLENET_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &frame).expect("write golden");
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run with BOTTLENET_BLESS=1 to create it", path.display()));
    let stored = decode(&expected).expect("decode golden");
    assert_eq!(stored.shape, shape);
    if exact_bytes {
        assert_eq!(frame, expected, "{name}: frame bytes changed");
    } else {
        assert_eq!(decode(&frame).expect("decode").data, stored.data, "{name}: decoded values changed");
    }
}

#[test]
fn abbreviated_jpeg_frame_is_stable() {
    check_golden("abbrev_1x28x28_q20.bin", Shape::new(1, 28, 28), CodecParams::paper(), true);
}

#[test]
fn full_jpeg_frame_is_stable() {
    check_golden("jpeg_4x14x14_q50.bin", Shape::new(4, 14, 14), CodecParams { codec: CodecKind::Jpeg, quality: 50, bits: 8 }, true);
}

#[test]
fn four_bit_png_frame_is_stable() {
    check_golden("png_2x8x8_4bit.bin", Shape::new(2, 8, 8), CodecParams { codec: CodecKind::Png, quality: 0, bits: 4 }, false);
}
