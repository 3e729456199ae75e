//! Property tests of the codec against naive references.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use bottlenet_codec::quantize::{dequantize, level_to_pixel, max_level, pixel_to_level, quantize};
use bottlenet_codec::tile::{TileGrid, tile, untile};
use bottlenet_codec::{CodecKind, CodecParams, Error, FeatureTensor, GrayImage, HEADER_LEN, Shape, decode, decode_header, encode};
use proptest::prelude::*;

/// Naive reference for tiling: pixel (x, y) of the image belongs to channel
/// `(y / H) * across + x / W` at (x mod W, y mod H), or is 0 when that channel does not exist.
fn naive_tile(levels: &[u8], shape: &Shape) -> Vec<u8> {
    let grid = TileGrid::for_channels(shape.channels);
    let (iw, ih) = (grid.across * shape.width, grid.down * shape.height);
    let mut out = Vec::new();
    for y in 0..ih {
        for x in 0..iw {
            let c = (y / shape.height) * grid.across + x / shape.width;
            out.push(if c < shape.channels {
                levels[c * shape.plane() + (y % shape.height) * shape.width + x % shape.width]
            } else {
                0
            });
        }
    }
    out
}

/// Naive reference for eq. (1): one left-to-right pass, `f64::round`. The vectorized
/// `quantize` must give the same levels and the same min/max bits (the sign of a zero included).
fn reference_quantize(values: &[f32], bits: u8) -> Result<(f32, f32, Vec<u8>), Error> {
    let mut min = f32::INFINITY;
    let mut max = f32::NEG_INFINITY;
    for (index, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(Error::NonFinite { index, value });
        }
        if value < min {
            min = value;
        }
        if value > max {
            max = value;
        }
    }
    if values.is_empty() {
        return Ok((0.0, 0.0, Vec::new()));
    }
    if min != max {
        (min, max) = (reference_snap(min, false), reference_snap(max, true));
    }
    let top = f64::from(max_level(bits));
    let range = f64::from(max) - f64::from(min);
    let levels = if range > 0.0 {
        values.iter().map(|&v| ((f64::from(v) - f64::from(min)) * (top / range)).round().clamp(0.0, top) as u8).collect()
    } else {
        vec![0; values.len()]
    };
    Ok((min, max, levels))
}

/// Naive reference for the side information's grid: `x` to a multiple of 2^(e − 7), `e` its
/// binary exponent (2⁻¹²⁶ for subnormals), toward +∞ when `up`; past the f32 range it stays.
fn reference_snap(x: f32, up: bool) -> f32 {
    if x == 0.0 {
        return x;
    }
    let exponent = f64::from(x.abs()).log2().floor().max(-126.0);
    // log2 may land one off at an exact power of two; the grid is the same either side of it for
    // every x the power itself (already on the grid) does not equal.
    let step = 2f64.powf(exponent - 7.0);
    let q = f64::from(x) / step;
    let snapped = if up { q.ceil() } else { q.floor() } * step;
    let snapped = snapped as f32;
    if snapped.is_finite() { snapped } else { x }
}

/// Naive reference for eq. (1)'s inverse.
fn reference_dequantize(levels: &[u8], bits: u8, min: f32, max: f32) -> Vec<f32> {
    let step = (f64::from(max) - f64::from(min)) / f64::from(max_level(bits));
    levels.iter().map(|&q| if q == 0 { min } else { (f64::from(min) + f64::from(q) * step) as f32 }).collect()
}

fn bits_of(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn assert_quantize_matches_reference(values: &[f32], bits: u8) {
    match (quantize(values, bits), reference_quantize(values, bits)) {
        (Ok(q), Ok((min, max, levels))) => {
            assert_eq!((q.min.to_bits(), q.max.to_bits()), (min.to_bits(), max.to_bits()), "min/max of {values:?}");
            assert_eq!(q.levels, levels, "levels of {values:?}");
            let all: Vec<u8> = (0..=255).collect();
            assert_eq!(bits_of(&dequantize(&all, bits, min, max)), bits_of(&reference_dequantize(&all, bits, min, max)));
        }
        (Err(Error::NonFinite { index, value }), Err(Error::NonFinite { index: i, value: v })) => {
            assert_eq!((index, value.to_bits()), (i, v.to_bits()), "first non-finite of {values:?}");
        }
        (ours, reference) => panic!("{values:?}: quantize gave {ours:?}, the reference {reference:?}"),
    }
}

/// Any f32 (NaN, ±∞, subnormals, ±0 included), or one from a small palette so that ties,
/// zeros of both signs and extreme ranges are common.
fn value_strategy() -> impl Strategy<Value = f32> {
    prop_oneof![
        prop::num::f32::ANY,
        -1e4f32..1e4,
        prop::sample::select(vec![0.0f32, -0.0, 1.0, -1.0, 0.5, 2.5, 3e38, -3e38, 1e-45, -1e-45, f32::MAX, f32::MIN]),
    ]
}

#[test]
fn zero_sign_of_min_and_max_is_the_first_zeros() {
    for values in [vec![0.0f32, -0.0], vec![-0.0, 0.0], vec![-0.0, 0.0, 1.0], vec![0.0, -1.0, -0.0], vec![-0.0; 9], vec![1.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0]] {
        assert_quantize_matches_reference(&values, 8);
    }
    let q = quantize(&[0.5, -0.0, 0.0], 8).unwrap();
    assert!(q.min == 0.0 && q.min.is_sign_negative());
}

#[test]
fn quantize_rounds_halves_like_f64_round() {
    // (v − min)·scale lands on and next to k + ½ for every level k.
    for bits in 1..=8u8 {
        let top = max_level(bits);
        let mut values: Vec<f32> = (0..=u32::from(top) * 2).map(|k| k as f32 / 2.0).collect();
        values.extend(values.clone().iter().flat_map(|&v| [f32::from_bits(v.to_bits().saturating_sub(1)), f32::from_bits(v.to_bits() + 1)]));
        assert_quantize_matches_reference(&values, bits);
    }
}

fn tensor_strategy(max_side: usize) -> impl Strategy<Value = FeatureTensor> {
    (1..=8usize, 1..=max_side, 1..=max_side).prop_flat_map(|(c, h, w)| {
        prop::collection::vec(-50.0f32..50.0, c * h * w)
            .prop_map(move |data| FeatureTensor { shape: Shape::new(c, h, w), data })
    })
}

proptest! {
    #[test]
    fn quantize_error_is_at_most_half_a_step(values in prop::collection::vec(-1e4f32..1e4, 1..300), bits in 1u8..=8) {
        let q = quantize(&values, bits).unwrap();
        let back = dequantize(&q.levels, bits, q.min, q.max);
        let step = (f64::from(q.max) - f64::from(q.min)) / f64::from(max_level(bits));
        for (&v, &b) in values.iter().zip(&back) {
            // half a step, plus f32 rounding of the result
            let bound = step / 2.0 + 1e-6 * f64::from(v.abs().max(1.0));
            prop_assert!((f64::from(v) - f64::from(b)).abs() <= bound, "{v} -> {b}, step {step}");
        }
        prop_assert!(q.levels.iter().all(|&l| l <= max_level(bits)));
    }

    #[test]
    fn quantize_matches_reference_bit_for_bit(values in prop::collection::vec(value_strategy(), 0..100), bits in 1u8..=8) {
        assert_quantize_matches_reference(&values, bits);
    }

    #[test]
    fn quantize_matches_reference_on_finite_tensors(values in prop::collection::vec(-1e3f32..1e3, 0..2000), zeros in 0usize..50, bits in 1u8..=8) {
        let mut values = values;
        let len = values.len();
        for i in 0..zeros.min(len) {
            values[i * 37 % len] = if i % 2 == 0 { 0.0 } else { -0.0 };
        }
        assert_quantize_matches_reference(&values, bits);
    }

    #[test]
    fn frame_decode_matches_the_stage_by_stage_reference(tensor in tensor_strategy(20), codec_id in 0usize..4, quality in 1u8..=100, bits in 1u8..=8) {
        let params = CodecParams { codec: CodecKind::ALL[codec_id], quality, bits }.normalized();
        let decoded = decode(&encode(&tensor, &params).unwrap()).unwrap();
        // quantize → level_to_pixel → tile → codec → untile → pixel_to_level → dequantize, one step at a time.
        let (min, max, levels) = reference_quantize(&tensor.data, bits).unwrap();
        let pixels: Vec<u8> = levels.iter().map(|&l| level_to_pixel(l, bits)).collect();
        let (width, height) = TileGrid::for_channels(tensor.shape.channels).image_size(&tensor.shape);
        let codec = params.codec.codec(params.quality);
        let payload = codec.encode(&GrayImage { width, height, pixels: tile(&pixels, &tensor.shape) }).unwrap();
        let image = codec.decode(&payload, width, height).unwrap();
        let back: Vec<u8> = untile(&image, &tensor.shape).into_iter().map(|p| pixel_to_level(p, bits)).collect();
        prop_assert_eq!(bits_of(&decoded.data), bits_of(&reference_dequantize(&back, bits, min, max)));
    }

    #[test]
    fn tile_matches_naive_reference(c in 1usize..=40, h in 1usize..=9, w in 1usize..=9, seed in any::<u8>()) {
        let shape = Shape::new(c, h, w);
        let levels: Vec<u8> = (0..shape.len()).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        prop_assert_eq!(tile(&levels, &shape), naive_tile(&levels, &shape));
    }

    #[test]
    fn frame_round_trip_recovers_header_and_pixels(tensor in tensor_strategy(20), codec_id in 0usize..4, quality in 1u8..=100, bits in 1u8..=8) {
        let codec = CodecKind::ALL[codec_id];
        let params = CodecParams { codec, quality, bits }.normalized();
        let frame = encode(&tensor, &params).unwrap();
        let header = decode_header(&frame).unwrap();
        prop_assert_eq!(header.params, params);
        prop_assert_eq!(header.shape, tensor.shape);
        prop_assert_eq!(header.frame_len(), frame.len());
        let q = quantize(&tensor.data, bits).unwrap();
        prop_assert_eq!((header.min, header.max), (q.min, q.max));
        let back = decode(&frame).unwrap();
        prop_assert_eq!(back.shape, tensor.shape);
        let step = (f64::from(q.max) - f64::from(q.min)) / f64::from(max_level(bits));
        let worst = tensor.data.iter().zip(&back.data).map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs()).fold(0.0, f64::max);
        if codec.is_jpeg() {
            // lossy: every value stays inside the quantizer's range
            prop_assert!(back.data.iter().all(|&v| v >= q.min - 1e-3 && v <= q.max + 1e-3));
        } else {
            prop_assert!(worst <= step / 2.0 + 1e-3, "lossless codec {codec} off by {worst}");
        }
    }

    #[test]
    fn decode_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_of_mutated_frames_never_panics(tensor in tensor_strategy(12), codec_id in 0usize..4, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let params = CodecParams { codec: CodecKind::ALL[codec_id], quality: 30, bits: 8 }.normalized();
        let mut frame = encode(&tensor, &params).unwrap();
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] ^= value;
        }
        let _ = decode(&frame);
        let _ = decode(&frame[..cut.index(frame.len())]);
    }

    #[test]
    fn corrupted_payload_with_fixed_crc_never_panics(tensor in tensor_strategy(16), codec_id in 0usize..4, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        // Re-sealing the CRC makes the corruption reach the codec itself.
        let params = CodecParams { codec: CodecKind::ALL[codec_id], quality: 50, bits: 8 }.normalized();
        let mut frame = encode(&tensor, &params).unwrap();
        if frame.len() > HEADER_LEN {
            for (at, value) in flips {
                let i = HEADER_LEN + at.index(frame.len() - HEADER_LEN);
                frame[i] ^= value;
            }
            let mut crc = crc32fast::Hasher::new();
            crc.update(&frame[..24]);
            crc.update(&frame[HEADER_LEN..]);
            let sum = crc.finalize().to_le_bytes();
            frame[24..28].copy_from_slice(&sum);
            let _ = decode(&frame);
        }
    }
}

#[test]
fn tile_untile_is_identity_for_every_channel_count() {
    for c in 1..=512 {
        let shape = Shape::new(c, 3, 2);
        let levels: Vec<u8> = (0..shape.len()).map(|i| (i % 251) as u8 + 1).collect();
        let image = tile(&levels, &shape);
        assert_eq!(untile(&image, &shape), levels, "C = {c}");
    }
}

#[test]
fn constant_tensor_round_trips_exactly_through_every_codec() {
    let tensor = FeatureTensor::new(Shape::new(3, 5, 7), vec![-2.5; 105]).unwrap();
    for codec in CodecKind::ALL {
        let params = CodecParams { codec, quality: 20, bits: 8 }.normalized();
        let back = decode(&encode(&tensor, &params).unwrap()).unwrap();
        assert_eq!(back.data, tensor.data, "{codec}");
    }
}

/// eq. 1's side information survives a few ULP of difference in the head's arithmetic (another
/// ISA's kernels): two extremes 2 ULP apart snap to the same sent value unless a grid point lies
/// between them, and the sent range always contains the tensor.
#[test]
fn nearby_extremes_snap_to_the_same_side_information() {
    use bottlenet_codec::quantize::snap_range;
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let (mut same, mut total) = (0, 0);
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let max = 0.01 + (seed >> 40) as f32 / (1u64 << 24) as f32 * 50.0;
        let min = -max / 3.0;
        let (lo, hi) = snap_range(min, max);
        assert!(lo <= min && hi >= max && lo.to_bits() & 0xffff == 0 && hi.to_bits() & 0xffff == 0, "{min} {max} -> {lo} {hi}");
        let nudged = snap_range(f32::from_bits(min.to_bits() + 2), f32::from_bits(max.to_bits() + 2));
        total += 1;
        same += usize::from(nudged == (lo, hi));
    }
    // 2 ULP in 2^16: a grid point lies between about 2·2/2^16 of the time, for each of two bounds.
    assert!(same as f64 >= 0.999 * total as f64, "{same} of {total} kept their side information");
}
