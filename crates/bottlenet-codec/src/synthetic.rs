//! Seeded synthetic feature tensors that look like post-ReLU activations: smooth spatial
//! structure (a few low-frequency waves per channel) plus noise, with about half the values
//! clamped to zero. Used by `bottlenet codec`, the benches and tests when no real tensor is given.

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
}
