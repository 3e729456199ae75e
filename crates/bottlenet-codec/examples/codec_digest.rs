//! Prints CRC-32 digests of the JPEG bytes and decoded pixels of a large seeded random corpus
//! (random sizes, qualities, stress patterns; grayscale and colour), to compare two builds or two
//! machines: the outputs must be identical (DESIGN §1). `tests/determinism.rs` pins a smaller
//! corpus in CI; this one is for by-hand checks of many more cases, e.g. after changing a codec
//! crate's version or features, or on the phone's ISA:
//!
//! `cargo run --release -p bottlenet-codec --example codec_digest -- 20000 > digests.txt`

use bottlenet_codec::synthetic::StressPattern;
use bottlenet_codec::{ChromaSampling, CodecKind, GrayImage, PhotoJpeg, decode_photo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Cases per printed line, so that two outputs that differ say roughly where.
const CHUNK: usize = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cases: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("case count {arg:?} is not a number; pass e.g. 20000"))?,
        None => 20_000,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2019);
    let mut total = crc32fast::Hasher::new();
    let mut chunk = crc32fast::Hasher::new();
    for case in 0..cases {
        let width = rng.random_range(1..=200);
        let height = rng.random_range(1..=200);
        let quality = rng.random_range(1..=100);
        let pattern = StressPattern::ALL[rng.random_range(0..StressPattern::ALL.len())];
        let seed = rng.random();
        let (encoded, decoded) = if case % 4 == 3 {
            let sampling = if rng.random() { ChromaSampling::Yuv420 } else { ChromaSampling::Yuv444 };
            let pixels = pattern.pixels(3, height, width, seed);
            let bytes = PhotoJpeg { quality, sampling }.encode(3, height, width, &pixels)?;
            let back = decode_photo(&bytes, 3, height, width)?;
            (bytes, back)
        } else {
            let image = GrayImage { width, height, pixels: pattern.pixels(1, height, width, seed) };
            let codec = CodecKind::Jpeg.codec(quality);
            let bytes = codec.encode(&image)?;
            let back = codec.decode(&bytes, width, height)?;
            (bytes, back)
        };
        for hasher in [&mut total, &mut chunk] {
            hasher.update(&(encoded.len() as u64).to_le_bytes());
            hasher.update(&encoded);
            hasher.update(&decoded);
        }
        if (case + 1) % CHUNK == 0 || case + 1 == cases {
            println!("cases {:>7}..{:<7} {:08x}", case / CHUNK * CHUNK, case + 1, std::mem::replace(&mut chunk, crc32fast::Hasher::new()).finalize());
        }
    }
    println!("all {cases} cases {:08x}", total.finalize());
    Ok(())
}
