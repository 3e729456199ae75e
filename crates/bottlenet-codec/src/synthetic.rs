//! Seeded synthetic feature tensors that look like post-ReLU activations: smooth spatial
//! structure (a few low-frequency waves per channel) plus noise, with about half the values
//! clamped to zero. Used by `bottlenet codec`, the benches and tests when no real tensor is given.
//! Also a synthetic input photo for the cloud-only codec (`photo.rs`).

use crate::tensor::{FeatureTensor, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A ReLU-like tensor of `shape`, identical for the same `seed` on every machine.
pub fn relu_like(shape: Shape, seed: u64) -> FeatureTensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(shape.len());
    for _ in 0..shape.channels {
        let waves: Vec<(f32, f32, f32, f32)> = (0..3)
            .map(|_| {
                (
                    rng.random_range(0.5..2.0),                      // amplitude
                    rng.random_range(0.0..std::f32::consts::TAU),    // phase
                    rng.random_range(0.1..0.6),                      // x frequency (rad/px)
                    rng.random_range(0.1..0.6),                      // y frequency (rad/px)
                )
            })
            .collect();
        let bias: f32 = rng.random_range(-0.8..0.2);
        for y in 0..shape.height {
            for x in 0..shape.width {
                let smooth: f32 = waves
                    .iter()
                    .map(|&(a, p, fx, fy)| a * (fx * x as f32 + fy * y as f32 + p).sin())
                    .sum();
                let noise: f32 = rng.random_range(-0.05..0.05); // mild texture on top of the smooth waves
                data.push((smooth / 3.0 + bias + noise).max(0.0));
            }
        }
    }
    FeatureTensor { shape, data }
}

/// A photo-like planar CHW image (3 channels: R, G, B; any other count: each plane the luma):
/// smooth colour gradients with a saturated red disc and a blue bar on top, the same on every
/// machine. The shapes' edges ramp over [`PHOTO_EDGE`] pixels, as a lens blurs them; a hard
/// one-pixel colour edge is beyond what 4:2:0 chroma can carry at any quality.
pub fn photo(channels: usize, height: usize, width: usize) -> Vec<u8> {
    let (h, w) = (height.max(1) as f32, width.max(1) as f32);
    let (cx, cy, radius) = (0.62 * w, 0.4 * h, 0.2 * w.min(h));
    // Coverage of a shape from the signed distance to its edge (negative inside), in pixels.
    let coverage = |distance: f32| (0.5 - distance / PHOTO_EDGE).clamp(0.0, 1.0);
    let mut planes = vec![Vec::with_capacity(height * width); channels];
    for y in 0..height {
        for x in 0..width {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let (u, v) = (px / w, py / h);
            let mut rgb = [255.0 * u, 255.0 * v, 255.0 * (1.0 - 0.5 * (u + v))];
            let disc = coverage(((px - cx).powi(2) + (py - cy).powi(2)).sqrt() - radius);
            let bar = coverage((0.15 * w - px).max(px - 0.3 * w).max(0.55 * h - py).max(py - 0.9 * h));
            for (colour, alpha) in [([230.0, 40.0, 30.0], disc), ([20.0, 60.0, 200.0], bar)] {
                for (value, target) in rgb.iter_mut().zip(colour) {
                    *value += alpha * (target - *value);
                }
            }
            if channels == 3 {
                for (plane, value) in planes.iter_mut().zip(rgb) {
                    plane.push(value.round() as u8);
                }
            } else {
                let luma = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).round() as u8;
                planes.iter_mut().for_each(|plane| plane.push(luma));
            }
        }
    }
    planes.concat()
}

/// Width in pixels over which [`photo`]'s shapes blend into the background.
pub const PHOTO_EDGE: f32 = 3.0;

/// Images that drive a JPEG codec to the corners of its arithmetic, for determinism checks
/// (`tests/determinism.rs`, `examples/codec_digest.rs`): extreme 0/255 patterns give the largest
/// DCT coefficients, noise fills every coefficient, flat areas take the decoder's DC-only path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StressPattern {
    /// Independent uniform pixels.
    Noise,
    /// 0/255 squares of `period` pixels.
    Checker { period: usize },
    /// 0/255 vertical stripes of `period` pixels.
    Stripes { period: usize },
    /// A diagonal ramp over the whole image.
    Gradient,
    /// Every pixel the same value.
    Flat(u8),
    /// Each 8×8 block picks one of: flat, noise, one-pixel checker, ramp.
    Blocks,
}

impl StressPattern {
    /// A spread of patterns, including every kind.
    pub const ALL: [StressPattern; 10] = [
        StressPattern::Noise,
        StressPattern::Checker { period: 1 },
        StressPattern::Checker { period: 4 },
        StressPattern::Stripes { period: 1 },
        StressPattern::Stripes { period: 3 },
        StressPattern::Gradient,
        StressPattern::Flat(0),
        StressPattern::Flat(255),
        StressPattern::Flat(97),
        StressPattern::Blocks,
    ];

    /// `width × height` pixels (row-major) of this pattern, identical for the same `seed` on
    /// every machine. `channels` planes are drawn one after another (planar CHW).
    pub fn pixels(self, channels: usize, height: usize, width: usize, seed: u64) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let extreme = |on: bool| if on { 255 } else { 0 };
        let ramp = |x: usize, y: usize| ((x + y) * 255 / (width + height).saturating_sub(2).max(1)).min(255) as u8;
        let block_kinds: Vec<u8> = (0..width.div_ceil(8) * height.div_ceil(8) * channels).map(|_| rng.random_range(0..4)).collect();
        let mut out = Vec::with_capacity(channels * height * width);
        for c in 0..channels {
            for y in 0..height {
                for x in 0..width {
                    let pixel = match self {
                        StressPattern::Noise => rng.random(),
                        StressPattern::Checker { period } => extreme((x / period + y / period + c) % 2 == 1),
                        StressPattern::Stripes { period } => extreme((x / period + c) % 2 == 1),
                        StressPattern::Gradient => ramp(x, y),
                        StressPattern::Flat(value) => value,
                        StressPattern::Blocks => {
                            let block = (c * height.div_ceil(8) + y / 8) * width.div_ceil(8) + x / 8;
                            match block_kinds[block] {
                                0 => (block * 37 % 256) as u8,
                                1 => rng.random(),
                                2 => extreme((x + y) % 2 == 1),
                                _ => ((x % 8 + y % 8) * 18) as u8,
                            }
                        }
                    };
                    out.push(pixel);
                }
            }
        }
        out
    }
}

impl std::fmt::Display for StressPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StressPattern::Noise => write!(f, "noise"),
            StressPattern::Checker { period } => write!(f, "checker{period}"),
            StressPattern::Stripes { period } => write!(f, "stripes{period}"),
            StressPattern::Gradient => write!(f, "gradient"),
            StressPattern::Flat(value) => write!(f, "flat{value}"),
            StressPattern::Blocks => write!(f, "blocks"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_relu_like() {
        let shape = Shape::new(4, 28, 28);
        let a = relu_like(shape, 7);
        assert_eq!(a, relu_like(shape, 7));
        assert_ne!(a, relu_like(shape, 8));
        let zeros = a.data.iter().filter(|&&v| v == 0.0).count() as f64 / a.data.len() as f64;
        assert!(a.data.iter().all(|&v| v >= 0.0));
        assert!((0.2..0.9).contains(&zeros), "zero fraction {zeros}");
    }

    #[test]
    fn stress_patterns_are_seeded_and_sized() {
        for pattern in StressPattern::ALL {
            let a = pattern.pixels(2, 13, 9, 5);
            assert_eq!(a.len(), 2 * 13 * 9, "{pattern}");
            assert_eq!(a, pattern.pixels(2, 13, 9, 5), "{pattern}");
        }
        assert_ne!(StressPattern::Noise.pixels(1, 8, 8, 1), StressPattern::Noise.pixels(1, 8, 8, 2));
        assert!(StressPattern::Checker { period: 1 }.pixels(1, 8, 8, 0).iter().all(|&p| p == 0 || p == 255));
    }

    #[test]
    fn photo_has_its_shapes_and_a_luma_plane_for_gray() {
        let (h, w) = (48, 64);
        let rgb = photo(3, h, w);
        assert_eq!(rgb.len(), 3 * h * w);
        assert_eq!(rgb, photo(3, h, w));
        let at = |c: usize, y: usize, x: usize| rgb[c * h * w + y * w + x];
        // Disc centre (0.62 w, 0.4 h) is red, bar centre (0.225 w, 0.725 h) is blue.
        let (dy, dx) = ((0.4 * h as f32) as usize, (0.62 * w as f32) as usize);
        assert_eq!((at(0, dy, dx), at(1, dy, dx), at(2, dy, dx)), (230, 40, 30));
        let (by, bx) = ((0.725 * h as f32) as usize, (0.225 * w as f32) as usize);
        assert_eq!((at(0, by, bx), at(1, by, bx), at(2, by, bx)), (20, 60, 200));
        let gray = photo(1, h, w);
        assert_eq!(gray.len(), h * w);
        let luma = 0.299 * 230.0 + 0.587 * 40.0 + 0.114 * 30.0;
        assert!((f32::from(gray[dy * w + dx]) - luma).abs() <= 0.5 + 1e-3);
    }
}
