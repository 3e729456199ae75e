//! Per-sample uniform min–max quantizer, paper eq. (1):
//! `q = round((F − min F) / (max F − min F) · (2ⁿ − 1))`, `min F` and `max F` sent as side information.

use crate::error::{Error, Result};

/// A quantized sample: levels in `0..=2ⁿ−1` plus the side information needed to undo eq. (1).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub bits: u8,
    pub min: f32,
    pub max: f32,
    pub levels: Vec<u8>,
}

/// Largest level for `bits`: `2ⁿ − 1`.
pub fn max_level(bits: u8) -> u8 {
    debug_assert!((1..=8).contains(&bits));
    ((1u16 << bits) - 1) as u8
}

/// Checks `bits` is in `1..=8`.
pub fn check_bits(bits: u8) -> Result<()> {
    if (1..=8).contains(&bits) { Ok(()) } else { Err(Error::BadBits(bits)) }
}

/// Quantizes `values` with eq. (1).
///
/// `min` and `max` are the tensor's extremes widened outward onto the [`SNAP_BITS`] grid
/// ([`snap_range`]), so that a phone on another ISA, whose head computes the extremes a few ULP
/// apart, still sends the same side information (issue 14: byte-identical frames across ISAs).
///
/// Invariants: every level is `≤ 2ⁿ−1`; `|dequantize(q) − F| ≤ step/2` (up to f32 rounding) with
/// `step = (max − min)/(2ⁿ−1)` of the sent (snapped) min and max; a constant tensor (`max == min`) maps to all-zero levels and
/// dequantizes back to exactly that constant. NaN or ±∞ is an error, not garbage. The result is
/// bit for bit that of a plain left-to-right loop with `f64::round` (`reference_quantize` in
/// `tests/properties.rs`); the loops here are only shaped so that the compiler vectorizes them.
pub fn quantize(values: &[f32], bits: u8) -> Result<Quantized> {
    check_bits(bits)?;
    let Some((min, max)) = finite_range(values)? else {
        return Ok(Quantized { bits, min: 0.0, max: 0.0, levels: Vec::new() });
    };
    let (min, max) = snap_range(min, max);
    let top = f64::from(max_level(bits));
    // f64 keeps (max − min) finite even when the f32 range would overflow (e.g. −3e38..3e38).
    let range = f64::from(max) - f64::from(min);
    let levels = if range > 0.0 {
        let (low, scale) = (f64::from(min), top / range);
        values.iter().map(|&v| round_to_level((f64::from(v) - low) * scale, top)).collect()
    } else {
        vec![0; values.len()]
    };
    Ok(Quantized { bits, min, max, levels })
}

/// Significant bits eq. 1's min and max keep (bfloat16's 8: the f32's low 16 bits are zero). A
/// difference of a few ULP between two ISAs' extremes then changes the sent value only when a
/// grid point lies between them (about 2⁻¹⁴ of values for 2 ULP), and the widened range makes the
/// quantization step at most 2·2⁻⁷ ≈ 1.6 % coarser (far less when min is 0, as after a ReLU).
pub const SNAP_BITS: u32 = 8;

/// `(min, max)` widened outward to the nearest values with [`SNAP_BITS`] significant bits:
/// `min` rounded toward −∞, `max` toward +∞. Zeros (either sign), a constant tensor
/// (`min == max`, which must dequantize exactly) and a bound that would round past the finite
/// range are left as they are.
pub fn snap_range(min: f32, max: f32) -> (f32, f32) {
    if min == max {
        return (min, max);
    }
    (snap(min, false), snap(max, true))
}

/// `x` on the grid, rounded toward +∞ when `up`, else toward −∞.
fn snap(x: f32, up: bool) -> f32 {
    const LOW: u32 = (1 << (24 - SNAP_BITS)) - 1;
    let bits = x.to_bits();
    if bits & LOW == 0 {
        return x;
    }
    // Truncating the low bits moves toward zero; away from zero is one grid step further out.
    let toward_zero = bits & !LOW;
    let away = x.is_sign_negative() != up;
    let snapped = f32::from_bits(if away { toward_zero + LOW + 1 } else { toward_zero });
    if snapped.is_finite() { snapped } else { x }
}

/// `x.round().clamp(0, top)` for finite `x ≥ 0` and `top ≤ 255`, without `f64::round` (a libm
/// call on baseline x86-64, which keeps the loop scalar). For `0 ≤ x ≤ top` the cast truncates to
/// `⌊x⌋`, `x − ⌊x⌋` is exact, and rounding half away from zero adds one when that is `≥ ½`; an
/// `x` past `top` gives `top` either way. Plain compare-and-select (not `f64::min`, which must
/// handle NaN) keeps the loop vectorized.
#[inline]
fn round_to_level(x: f64, top: f64) -> u8 {
    let whole = (if x < top { x } else { top }) as i32;
    let level = whole + i32::from(x - f64::from(whole) >= 0.5);
    let top = top as i32;
    (if level < top { level } else { top }) as u8
}

/// `(min, max)` of `values` (`None` when empty), or the first non-finite value as an error.
///
/// Of values that compare equal (only `−0.0` and `+0.0` can differ), the first one in `values` is
/// taken, as a left-to-right `if v < min { min = v }` would: the sign of a zero min or max is
/// the first zero's, on every machine. Eight independent lanes let the compiler use vector
/// min/max; the zero case is settled afterwards.
fn finite_range(values: &[f32]) -> Result<Option<(f32, f32)>> {
    const LANES: usize = 8;
    let mut low = [f32::INFINITY; LANES];
    let mut high = [f32::NEG_INFINITY; LANES];
    let mut finite = [true; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            let v = chunk[lane];
            finite[lane] &= v.is_finite();
            low[lane] = if v < low[lane] { v } else { low[lane] };
            high[lane] = if v > high[lane] { v } else { high[lane] };
        }
    }
    for (lane, &v) in tail.iter().enumerate() {
        finite[lane] &= v.is_finite();
        low[lane] = if v < low[lane] { v } else { low[lane] };
        high[lane] = if v > high[lane] { v } else { high[lane] };
    }
    if !finite.iter().all(|&f| f)
        && let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite())
    {
        return Err(Error::NonFinite { index, value });
    }
    if values.is_empty() {
        return Ok(None);
    }
    let mut min = low.into_iter().fold(f32::INFINITY, |m, v| if v < m { v } else { m });
    let mut max = high.into_iter().fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    let first_zero = || values.iter().copied().find(|&v| v == 0.0);
    if min == 0.0 {
        min = first_zero().unwrap_or(min);
    }
    if max == 0.0 {
        max = first_zero().unwrap_or(max);
    }
    Ok(Some((min, max)))
}

/// Inverse of eq. (1): `F̂ = min + q · (max − min)/(2ⁿ−1)`.
pub fn dequantize(levels: &[u8], bits: u8, min: f32, max: f32) -> Vec<f32> {
    let table = level_values(bits, min, max);
    levels.iter().map(|&q| table[usize::from(q)]).collect()
}

/// The value eq. (1)'s inverse gives every possible level (`q > 2ⁿ−1` extrapolates the same
/// line; level 0 is `min` itself, so a constant tensor round-trips exactly).
pub fn level_values(bits: u8, min: f32, max: f32) -> [f32; 256] {
    let top = f64::from(max_level(bits));
    let step = (f64::from(max) - f64::from(min)) / top;
    std::array::from_fn(|q| if q == 0 { min } else { (f64::from(min) + q as f64 * step) as f32 })
}

/// Maps an n-bit level to the full 8-bit pixel range, so the JPEG quantizer sees the same
/// dynamic range whatever `n` is (identity for n = 8).
pub fn level_to_pixel(level: u8, bits: u8) -> u8 {
    if bits == 8 {
        return level;
    }
    ((u32::from(level) * 255 * 2 + u32::from(max_level(bits))) / (2 * u32::from(max_level(bits)))) as u8
}

/// Inverse of [`level_to_pixel`] for a (possibly codec-distorted) pixel: nearest level.
pub fn pixel_to_level(pixel: u8, bits: u8) -> u8 {
    if bits == 8 {
        return pixel;
    }
    let top = u32::from(max_level(bits));
    ((u32::from(pixel) * top * 2 + 255) / (2 * 255)) as u8
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    #[test]
    fn constant_tensor_round_trips_exactly() {
        let values = vec![3.25_f32; 17];
        let q = quantize(&values, 8).unwrap();
        assert!(q.levels.iter().all(|&l| l == 0));
        assert_eq!(dequantize(&q.levels, 8, q.min, q.max), values);
    }

    #[test]
    fn non_finite_is_rejected() {
        assert!(matches!(quantize(&[0.0, f32::NAN], 8), Err(Error::NonFinite { index: 1, .. })));
        assert!(matches!(quantize(&[f32::INFINITY], 4), Err(Error::NonFinite { index: 0, .. })));
    }

    #[test]
    fn bits_out_of_range_are_rejected() {
        assert!(matches!(quantize(&[1.0], 0), Err(Error::BadBits(0))));
        assert!(matches!(quantize(&[1.0], 9), Err(Error::BadBits(9))));
    }

    #[test]
    fn extremes_map_to_end_levels() {
        let q = quantize(&[-1.0, 0.0, 1.0], 2).unwrap();
        assert_eq!(q.levels, vec![0, 2, 3]); // 1.5 rounds half away from zero
    }

    #[test]
    fn level_pixel_maps_invert() {
        for bits in 1..=8 {
            for level in 0..=max_level(bits) {
                assert_eq!(pixel_to_level(level_to_pixel(level, bits), bits), level, "bits {bits}");
            }
        }
        assert_eq!(level_to_pixel(1, 1), 255);
        assert_eq!(level_to_pixel(15, 4), 255);
    }
}
