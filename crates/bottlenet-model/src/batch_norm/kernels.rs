//! Training-mode BatchNorm (optionally followed by ReLU) over a contiguous NCHW `f32` buffer:
//! the forward with the batch's statistics and the backward for the input, `γ` and `β`, each
//! two passes over the activation (burn's composition of the same op makes about twenty, with
//! two transposing copies: docs/engines.md, "BatchNorm and ReLU for training").
//!
//! Definitions (burn's `batch_norm_train`, the same as PyTorch's training BatchNorm): per channel
//! `c` over its `M = N·H·W` values, `μ = Σx/M`, `σ² = Σ(x − μ)²/M` (biased), `x̂ = (x − μ)/√(σ² + ε)`,
//! `y = γ·x̂ + β`, then `max(y, 0)` when ReLU is fused. The backward with `g = ∂L/∂y` (masked by
//! `y > 0` under ReLU): `∂β = Σg`, `∂γ = Σg·x̂`, `∂x = γ/√(σ² + ε) · (g − ∂β/M − x̂·∂γ/M)`.
//! The arithmetic is `f64` (the buffers stay `f32`); sums accumulate in vector lanes. Each
//! task's loop runs under `pulp`'s run-time dispatch, so it is compiled for AVX-512 or AVX2
//! where the CPU has them (the workspace builds for baseline x86-64, SSE2 only: the same loops
//! were 24 % of a training step's samples there).

use pulp::Arch;
use rayon::prelude::*;

/// The layout of one activation: `[batch, channels, plane]` with `plane = H·W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl Layout {
    pub fn len(self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Values per channel (`M`).
    fn per_channel(self) -> usize {
        self.batch * self.plane
    }

    /// The `plane`-long runs of channel `c`, one per batch item.
    fn runs(self, values: &[f32], c: usize) -> impl Iterator<Item = &[f32]> {
        (0..self.batch).map(move |n| {
            let start = (n * self.channels + c) * self.plane;
            &values[start..start + self.plane]
        })
    }
}

/// One channel's batch statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ChannelStats {
    pub mean: f64,
    /// Biased variance (what the running statistics are fed, as in burn).
    pub variance: f64,
    /// `1/√(σ² + ε)`.
    pub inv_std: f64,
}

/// The forward: writes `y` and returns each channel's statistics.
pub(crate) fn forward(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64, relu: bool, layout: Layout, y: &mut [f32]) -> Vec<ChannelStats> {
    debug_assert_eq!(x.len(), layout.len());
    debug_assert_eq!(y.len(), layout.len());
    let m = layout.per_channel().max(1) as f64;
    let arch = Arch::new();
    let stats: Vec<ChannelStats> = (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            // One pass: in f64, E[x²] − μ² loses nothing that matters for activations.
            let (sum, sum_squares) = arch.dispatch(|| {
                layout.runs(x, c).fold((0.0, 0.0), |(s, q), run| {
                    let [rs, rq] = lane_sums(run, |v| {
                        let v = f64::from(v);
                        [v, v * v]
                    });
                    (s + rs, q + rq)
                })
            });
            let mean = sum / m;
            let variance = (sum_squares / m - mean * mean).max(0.0);
            ChannelStats { mean, variance, inv_std: 1.0 / (variance + epsilon).sqrt() }
        })
        .collect();
    y.par_chunks_mut(layout.plane.max(1)).zip(x.par_chunks(layout.plane.max(1))).enumerate().for_each(|(run, (out, input))| {
        let c = run % layout.channels;
        let s = stats[c];
        let scale = f64::from(gamma[c]) * s.inv_std;
        let shift = f64::from(beta[c]) - s.mean * scale;
        arch.dispatch(|| {
            for (o, &v) in out.iter_mut().zip(input) {
                let v = (f64::from(v) * scale + shift) as f32;
                *o = if relu { v.max(0.0) } else { v };
            }
        });
    });
    stats
}

/// What the backward produces: `∂x` (when asked for), `∂γ`, `∂β`.
pub(crate) struct Gradients {
    pub x: Option<Vec<f32>>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// The backward of [`forward`] at `x` with the statistics it returned.
pub(crate) fn backward(
    x: &[f32],
    grad_y: &[f32],
    gamma: &[f32],
    beta: &[f32],
    stats: &[ChannelStats],
    relu: bool,
    layout: Layout,
    want_x: bool,
) -> Gradients {
    debug_assert_eq!(grad_y.len(), layout.len());
    let m = layout.per_channel().max(1) as f64;
    let arch = Arch::new();
    // The gradient that reaches the BatchNorm's output: through ReLU's mask, recomputed from x.
    // In f64: `x − μ` of a channel far from zero mean keeps its digits.
    let masked = |c: usize, v: f32, g: f32| -> (f64, f64) {
        let s = stats[c];
        let normalized = (f64::from(v) - s.mean) * s.inv_std;
        let g = if relu && normalized * f64::from(gamma[c]) + f64::from(beta[c]) <= 0.0 { 0.0 } else { f64::from(g) };
        (normalized, g)
    };
    let sums: Vec<(f64, f64)> = (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            arch.dispatch(|| {
                let (mut sum_g, mut sum_g_normalized) = (0.0f64, 0.0f64);
                for (xs, gs) in layout.runs(x, c).zip(layout.runs(grad_y, c)) {
                    let [rg, rgn] = lane_sums_pairs(xs, gs, |v, g| {
                        let (normalized, g) = masked(c, v, g);
                        [g, g * normalized]
                    });
                    sum_g += rg;
                    sum_g_normalized += rgn;
                }
                (sum_g, sum_g_normalized)
            })
        })
        .collect();
    let grad_x = want_x.then(|| {
        let mut grad_x = vec![0.0f32; layout.len()];
        let plane = layout.plane.max(1);
        grad_x.par_chunks_mut(plane).zip(x.par_chunks(plane).zip(grad_y.par_chunks(plane))).enumerate().for_each(|(run, (out, (xs, gs)))| {
            let c = run % layout.channels;
            let (sum_g, sum_gn) = sums[c];
            let (mean_g, mean_gn) = (sum_g / m, sum_gn / m);
            let scale = f64::from(gamma[c]) * stats[c].inv_std;
            arch.dispatch(|| {
                for ((o, &v), &g) in out.iter_mut().zip(xs).zip(gs) {
                    let (normalized, g) = masked(c, v, g);
                    *o = (scale * (g - mean_g - normalized * mean_gn)) as f32;
                }
            });
        });
        grad_x
    });
    Gradients {
        x: grad_x,
        gamma: sums.iter().map(|s| s.1 as f32).collect(),
        beta: sums.iter().map(|s| s.0 as f32).collect(),
    }
}

/// Lanes of the vectorised sums: independent accumulators, so the compiler may keep them in one
/// vector register (a single running float sum is one dependent add after another).
const LANES: usize = 8;

/// `Σ f(v)` over `values`, two sums at once, as [`lane_sums_pairs`].
#[inline(always)]
fn lane_sums(values: &[f32], f: impl Fn(f32) -> [f64; 2]) -> [f64; 2] {
    lane_sums_pairs(values, values, |v, _| f(v))
}

/// `Σ f(x, g)` over paired values, two sums at once, in [`LANES`] independent accumulators.
#[inline(always)]
fn lane_sums_pairs(xs: &[f32], gs: &[f32], f: impl Fn(f32, f32) -> [f64; 2]) -> [f64; 2] {
    let mut acc = [[0.0f64; LANES]; 2];
    let (mut x_chunks, mut g_chunks) = (xs.chunks_exact(LANES), gs.chunks_exact(LANES));
    for (xc, gc) in (&mut x_chunks).zip(&mut g_chunks) {
        for lane in 0..LANES {
            let [a, b] = f(xc[lane], gc[lane]);
            acc[0][lane] += a;
            acc[1][lane] += b;
        }
    }
    let mut total = [acc[0].iter().sum::<f64>(), acc[1].iter().sum::<f64>()];
    for (&v, &g) in x_chunks.remainder().iter().zip(g_chunks.remainder()) {
        let [a, b] = f(v, g);
        total[0] += a;
        total[1] += b;
    }
    total
}
