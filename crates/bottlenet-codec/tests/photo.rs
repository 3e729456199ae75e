//! The cloud-only photo codec (`photo.rs`): quality, real colour, agreement with an independent
//! decoder, refusal of lying headers before the scan, and no panics on any bytes.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use bottlenet_codec::photo::MAX_SIDE;
use bottlenet_codec::synthetic::photo;
use bottlenet_codec::{ChromaSampling, Error, PhotoJpeg, decode_photo};
use proptest::prelude::*;

const H: usize = 48;
const W: usize = 64;

fn jpeg(quality: u8, sampling: ChromaSampling) -> PhotoJpeg {
    PhotoJpeg { quality, sampling }
}

/// PSNR in dB of each channel of two CHW images of `plane` pixels per channel.
fn psnr_per_channel(a: &[u8], b: &[u8], plane: usize) -> Vec<f64> {
    a.chunks(plane)
        .zip(b.chunks(plane))
        .map(|(x, y)| {
            let mse = x.iter().zip(y).map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2)).sum::<f64>() / plane as f64;
            if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
        })
        .collect()
}

fn roundtrip_psnr(quality: u8, sampling: ChromaSampling) -> Vec<f64> {
    let image = photo(3, H, W);
    let bytes = jpeg(quality, sampling).encode(3, H, W, &image).unwrap();
    let back = decode_photo(&bytes, 3, H, W).unwrap();
    psnr_per_channel(&image, &back, H * W)
}

/// The (component id, h, v) sampling factors of the first SOF0 segment of `bytes`.
fn sof0_factors(bytes: &[u8]) -> Vec<(u8, u8, u8)> {
    let at = bytes.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    let components = usize::from(bytes[at + 9]);
    (0..components).map(|i| {
        let c = &bytes[at + 10 + 3 * i..];
        (c[0], c[1] >> 4, c[1] & 0x0F)
    }).collect()
}

/// Bytes up to and including the SOS segment: every header, no entropy-coded data.
fn headers_only(bytes: &[u8]) -> &[u8] {
    let at = bytes.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap();
    let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
    &bytes[..at + 2 + length]
}

#[test]
fn q90_is_above_30_db_and_q20_above_20_db_per_channel() {
    for sampling in ChromaSampling::ALL {
        let high = roundtrip_psnr(90, sampling);
        let low = roundtrip_psnr(20, sampling);
        println!("{sampling}: q90 {high:.2?} dB, q20 {low:.2?} dB");
        assert!(high.iter().all(|&p| p > 30.0), "{sampling} q90: {high:?}");
        assert!(low.iter().all(|&p| p > 20.0), "{sampling} q20: {low:?}");
        for (h, l) in high.iter().zip(&low) {
            assert!(h > l, "{sampling}: q90 {high:?} should beat q20 {low:?}");
        }
    }
}

#[test]
fn yuv420_is_smaller_than_444_and_bytes_grow_with_quality() {
    let image = photo(3, H, W);
    let size = |q, s| jpeg(q, s).encode(3, H, W, &image).unwrap().len();
    for q in [10, 20, 50, 90, 100] {
        let (sub, full) = (size(q, ChromaSampling::Yuv420), size(q, ChromaSampling::Yuv444));
        println!("q{q}: 4:2:0 {sub} B, 4:4:4 {full} B");
        assert!(sub < full, "q{q}: 4:2:0 {sub} B vs 4:4:4 {full} B");
    }
    for s in ChromaSampling::ALL {
        let sizes = [10, 50, 90].map(|q| size(q, s));
        assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "{s}: {sizes:?}");
    }
}

#[test]
fn the_file_is_jfif_ycbcr_with_the_requested_sampling() {
    let image = photo(3, H, W);
    let sub = jpeg(50, ChromaSampling::Yuv420).encode(3, H, W, &image).unwrap();
    assert!(sub.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]) && &sub[6..11] == b"JFIF\0");
    assert!(sub.ends_with(&[0xFF, 0xD9]));
    let factors = |b: &[u8]| sof0_factors(b).into_iter().map(|(_, h, v)| (h, v)).collect::<Vec<_>>();
    assert_eq!(factors(&sub), [(2, 2), (1, 1), (1, 1)]);
    // Even at q100, where jpeg-encoder alone would switch to 4:4:4, the sampling asked for is kept.
    let sub100 = jpeg(100, ChromaSampling::Yuv420).encode(3, H, W, &image).unwrap();
    assert_eq!(factors(&sub100), [(2, 2), (1, 1), (1, 1)]);
    let full = jpeg(50, ChromaSampling::Yuv444).encode(3, H, W, &image).unwrap();
    assert_eq!(factors(&full), [(1, 1), (1, 1), (1, 1)]);
    let gray = jpeg(50, ChromaSampling::Yuv420).encode(1, H, W, &photo(1, H, W)).unwrap();
    assert_eq!(factors(&gray), [(1, 1)]);
}

/// Regression for the grayscale-of-stacked-planes upload: a red photo must decode red.
#[test]
fn a_pure_red_photo_decodes_red() {
    let plane = H * W;
    let mut red = vec![0u8; 3 * plane];
    red[..plane].fill(255);
    for sampling in ChromaSampling::ALL {
        let back = decode_photo(&jpeg(20, sampling).encode(3, H, W, &red).unwrap(), 3, H, W).unwrap();
        let mean = |c: usize| back[c * plane..(c + 1) * plane].iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64;
        let (r, g, b) = (mean(0), mean(1), mean(2));
        assert!(r > 240.0 && g < 15.0 && b < 15.0, "{sampling}: mean R {r:.1}, G {g:.1}, B {b:.1}");
    }
}

#[test]
fn an_independent_decoder_sees_the_same_photo() {
    let plane = H * W;
    for (channels, sampling, quality) in
        [(3, ChromaSampling::Yuv420, 50), (3, ChromaSampling::Yuv444, 90), (3, ChromaSampling::Yuv420, 10), (1, ChromaSampling::Yuv420, 50)]
    {
        let bytes = jpeg(quality, sampling).encode(channels, H, W, &photo(channels, H, W)).unwrap();
        let ours = decode_photo(&bytes, channels, H, W).unwrap();
        let theirs = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((theirs.width() as usize, theirs.height() as usize), (W, H));
        // image's pixels are interleaved HWC; ours are planar CHW.
        let theirs: Vec<u8> = if channels == 3 { theirs.to_rgb8().into_raw() } else { theirs.to_luma8().into_raw() };
        let (mut worst, mut total) = (0u8, 0u64);
        for (i, &t) in theirs.iter().enumerate() {
            let o = ours[(i % channels) * plane + i / channels];
            worst = worst.max(o.abs_diff(t));
            total += u64::from(o.abs_diff(t));
        }
        let mean = total as f64 / theirs.len() as f64;
        println!("{channels}ch {sampling} q{quality}: max |diff| {worst}, mean {mean:.3}");
        // Both decoders are IJG-compatible but round the IDCT and upsample chroma differently.
        assert!(worst <= 12 && mean < 1.0, "{channels}ch {sampling} q{quality}: max {worst}, mean {mean:.3}");
    }
}

#[test]
fn a_wrong_size_or_channel_count_is_refused_from_the_headers_alone() {
    let bytes = jpeg(50, ChromaSampling::Yuv420).encode(3, H, W, &photo(3, H, W)).unwrap();
    assert!(decode_photo(&bytes, 3, H, W).is_ok());
    for (c, h, w) in [(3, H, W - 1), (3, H + 1, W), (3, W, H), (1, H, W), (3, 4096, 4096)] {
        assert!(matches!(decode_photo(&bytes, c, h, w), Err(Error::PhotoMismatch { .. })), "{c}x{h}x{w}");
    }
    // The headers alone, no scan: a mismatch is still reported as such (so it was found before
    // the scan), while the right expectation gets past them and fails on the missing scan.
    let head = headers_only(&bytes);
    assert!(matches!(decode_photo(head, 3, H, W - 1), Err(Error::PhotoMismatch { .. })));
    assert!(matches!(decode_photo(head, 1, H, W), Err(Error::PhotoMismatch { .. })));
    assert!(matches!(decode_photo(head, 3, H, W), Err(Error::CorruptPayload { .. })));
    let gray = jpeg(50, ChromaSampling::Yuv420).encode(1, H, W, &photo(1, H, W)).unwrap();
    assert!(matches!(decode_photo(&gray, 3, H, W), Err(Error::PhotoMismatch { .. })));
}

/// A frame header claiming the largest size SOF0 can hold, on a few bytes of scan.
#[test]
fn a_header_claiming_a_huge_frame_is_refused() {
    let mut bytes = jpeg(50, ChromaSampling::Yuv420).encode(3, 16, 16, &photo(3, 16, 16)).unwrap();
    let at = bytes.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    let side = u16::try_from(MAX_SIDE).unwrap().to_be_bytes();
    bytes[at + 5..at + 7].copy_from_slice(&side);
    bytes[at + 7..at + 9].copy_from_slice(&side);
    assert!(matches!(decode_photo(&bytes, 3, 16, 16), Err(Error::PhotoMismatch { .. })));
}

#[test]
fn a_progressive_photo_is_refused() {
    let image = photo(3, H, W);
    let interleaved: Vec<u8> = (0..H * W).flat_map(|i| [image[i], image[H * W + i], image[2 * H * W + i]]).collect();
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 50);
    encoder.set_progressive(true);
    encoder.encode(&interleaved, W as u16, H as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    let err = decode_photo(&bytes, 3, H, W).unwrap_err();
    assert!(matches!(err, Error::PhotoMismatch { .. }), "{err}");
    assert!(err.to_string().contains("progressive"), "{err}");
}

#[test]
fn every_truncation_is_refused() {
    for (c, s) in [(3, ChromaSampling::Yuv420), (3, ChromaSampling::Yuv444), (1, ChromaSampling::Yuv420)] {
        let bytes = jpeg(30, s).encode(c, 20, 28, &photo(c, 20, 28)).unwrap();
        let head = headers_only(&bytes).len();
        for cut in 0..bytes.len() {
            let err = decode_photo(&bytes[..cut], c, 20, 28).unwrap_err();
            assert!(matches!(err, Error::CorruptPayload { .. }), "{c}ch {s}, {cut} of {} bytes: {err}", bytes.len());
            if cut >= head {
                assert!(err.to_string().contains("EOI"), "{c}ch {s}, {cut} of {} bytes: {err}", bytes.len());
            }
        }
    }
}

#[test]
fn garbage_is_a_typed_error() {
    assert!(matches!(decode_photo(&[], 3, 8, 8), Err(Error::CorruptPayload { .. })));
    assert!(matches!(decode_photo(b"not a jpeg at all", 3, 8, 8), Err(Error::CorruptPayload { .. })));
    assert!(matches!(decode_photo(&[0xFF, 0xD8, 0xFF, 0xD9], 1, 8, 8), Err(Error::CorruptPayload { .. })));
}

fn photo_strategy() -> impl Strategy<Value = (usize, usize, usize, Vec<u8>)> {
    (prop_oneof![Just(1usize), Just(3usize)], 1..=40usize, 1..=40usize).prop_flat_map(|(c, h, w)| {
        prop::collection::vec(any::<u8>(), c * h * w).prop_map(move |pixels| (c, h, w, pixels))
    })
}

fn sampling_strategy() -> impl Strategy<Value = ChromaSampling> {
    prop_oneof![Just(ChromaSampling::Yuv420), Just(ChromaSampling::Yuv444)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_photo_round_trips_to_its_size_deterministically(
        (c, h, w, pixels) in photo_strategy(), quality in 1u8..=100, sampling in sampling_strategy(),
    ) {
        let codec = jpeg(quality, sampling);
        let bytes = codec.encode(c, h, w, &pixels).unwrap();
        prop_assert_eq!(&bytes, &codec.encode(c, h, w, &pixels).unwrap());
        let once = decode_photo(&bytes, c, h, w).unwrap();
        prop_assert_eq!(once.len(), c * h * w);
        prop_assert_eq!(once, decode_photo(&bytes, c, h, w).unwrap());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), c in prop_oneof![Just(1usize), Just(3usize)]) {
        if let Ok(pixels) = decode_photo(&bytes, c, 8, 8) {
            prop_assert_eq!(pixels.len(), c * 64);
        }
    }

    #[test]
    fn corrupted_photos_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = jpeg(40, ChromaSampling::Yuv420).encode(3, 24, 24, &photo(3, 24, 24)).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(pixels) = decode_photo(&bytes, 3, 24, 24) {
            prop_assert_eq!(pixels.len(), 3 * 24 * 24);
        }
    }
}

