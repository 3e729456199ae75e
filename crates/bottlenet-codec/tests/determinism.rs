//! Every build, on every machine, must write the same JPEG bytes and decode them to the same
//! pixels (DESIGN §1: the server decodes what a phone built elsewhere encoded, to the pixels
//! training saw). The workspace lets zune-jpeg use AVX2 on x86 (inverse DCT, YCbCr→RGB) and keeps
//! it scalar elsewhere; jpeg-encoder's AVX2 forward DCT failed this test (other bytes), so it
//! stays scalar everywhere. This test pins the CRC-32 of the bytes and pixels of a corpus that
//! drives both codecs to the corners of their arithmetic: extreme 0/255 patterns at quality 100
//! (largest coefficients), quality 1 (largest quantizer steps), flat blocks (the decoders'
//! DC-only path), odd sizes (partial blocks, the SIMD loops' scalar tails). The digests were
//! written by the all-scalar build; every build on every machine must reproduce them.
//! `examples/codec_digest.rs` runs a larger random corpus for comparing two builds or machines.
//!
//! Rewrite only on purpose: `BOTTLENET_BLESS=1 cargo test -p bottlenet-codec --test determinism`.

use bottlenet_codec::synthetic::{StressPattern, photo, relu_like};
use bottlenet_codec::{
    ChromaSampling, CodecKind, CodecParams, GrayImage, PhotoJpeg, Shape, decode, decode_photo, encode,
};
use std::fmt::Write;
use std::path::PathBuf;

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// One line per case: `name bytes crc(encoded) crc(decoded)`.
fn digests() -> String {
    let mut out = String::new();
    let mut line = |name: String, encoded: &[u8], decoded: &[u8]| {
        writeln!(out, "{name} {} {:08x} {:08x}", encoded.len(), crc(encoded), crc(decoded)).expect("write to String");
    };

    // Grayscale feature images: the full stream (the abbreviated one is its scan, tested in jpeg.rs).
    let sizes = [(8, 8), (13, 9), (28, 28), (57, 23), (112, 56), (224, 112), (448, 448)];
    for (width, height) in sizes {
        for quality in [1, 5, 20, 50, 75, 90, 100] {
            for (seed, pattern) in StressPattern::ALL.into_iter().enumerate() {
                let pixels = pattern.pixels(1, height, width, seed as u64);
                let image = GrayImage { width, height, pixels };
                let codec = CodecKind::Jpeg.codec(quality);
                let bytes = codec.encode(&image).expect("encode");
                let back = codec.decode(&bytes, width, height).expect("decode");
                line(format!("gray/{width}x{height}/q{quality}/{pattern}"), &bytes, &back);
            }
        }
    }

    // Whole frames (quantize → tile → codec → untile → dequantize) at the shapes the system sends.
    let params = [
        CodecParams::paper(),
        CodecParams { codec: CodecKind::JpegAbbrev, quality: 90, bits: 8 },
        CodecParams { codec: CodecKind::Jpeg, quality: 50, bits: 4 },
    ];
    for shape in [Shape::new(1, 28, 28), Shape::new(3, 7, 5), Shape::new(8, 28, 28), Shape::new(64, 56, 56)] {
        for p in params {
            let frame = encode(&relu_like(shape, 11), &p).expect("encode frame");
            let values: Vec<u8> = decode(&frame).expect("decode frame").data.iter().flat_map(|v| v.to_le_bytes()).collect();
            line(format!("frame/{shape}/{}/q{}/{}bit", p.codec, p.quality, p.bits), &frame, &values);
        }
    }

    // Colour photos (cloud-only): RGB→YCbCr, chroma averaging, upsampling, YCbCr→RGB.
    let photos: [(&str, usize, usize, Vec<u8>); 4] = [
        ("photo", 224, 224, photo(3, 224, 224)),
        ("noise", 37, 29, StressPattern::Noise.pixels(3, 37, 29, 3)),
        ("checker1", 40, 24, StressPattern::Checker { period: 1 }.pixels(3, 40, 24, 0)),
        ("blocks", 61, 45, StressPattern::Blocks.pixels(3, 61, 45, 4)),
    ];
    for (name, height, width, pixels) in &photos {
        for sampling in [ChromaSampling::Yuv420, ChromaSampling::Yuv444] {
            for quality in [5, 20, 50, 90, 100] {
                let bytes = PhotoJpeg { quality, sampling }.encode(3, *height, *width, pixels).expect("encode photo");
                let back = decode_photo(&bytes, 3, *height, *width).expect("decode photo");
                line(format!("photo/{name}/{width}x{height}/{sampling}/q{quality}"), &bytes, &back);
            }
        }
    }
    out
}

#[test]
fn codec_bytes_and_pixels_match_the_scalar_build() {
    let actual = digests();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/expected/determinism_digests.txt");
    if std::env::var_os("BOTTLENET_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("write digests");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with BOTTLENET_BLESS=1 to create it", path.display()));
    let differing: Vec<String> = expected
        .lines()
        .zip(actual.lines())
        .filter(|(e, a)| e != a)
        .take(10)
        .map(|(e, a)| format!("  expected {e}\n  actual   {a}"))
        .collect();
    assert!(
        differing.is_empty() && expected.lines().count() == actual.lines().count(),
        "codec output differs from the scalar build's ({} vs {} cases); first differences:\n{}",
        actual.lines().count(),
        expected.lines().count(),
        differing.join("\n")
    );
}
