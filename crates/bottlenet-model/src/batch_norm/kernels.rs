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
//! task's loop is a `pulp` [`WithSimd`] run through the run-time dispatch, so it is compiled for
//! AVX-512 or AVX2 where the CPU has them (the workspace builds for baseline x86-64, SSE2 only).

use pulp::{Arch, Simd, WithSimd};
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
    #[inline(always)]
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

// Each loop below is a `WithSimd` whose `with_simd` is `#[inline(always)]`: pulp inlines it into
// a function compiled for AVX2 (or AVX-512), so the loop is vectorised for that instruction set.
// A closure handed to `Arch::dispatch` is not: its body stays a function of its own, compiled for
// the baseline (SSE2), and that is what the training step ran before session 19 (perf showed
// `cvtss2sd`/`mulsd` on `xmm` registers in these loops, 23 % of the step's samples on an AVX2 host).

/// `Σx` and `Σx²` of one channel.
struct ChannelSums<'a> {
    x: &'a [f32],
    layout: Layout,
    channel: usize,
}

impl WithSimd for ChannelSums<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> (f64, f64) {
        self.layout.runs(self.x, self.channel).fold((0.0, 0.0), |(s, q), run| {
            let [rs, rq] = lane_sums_pairs(run, run, |v, _| {
                let v = f64::from(v);
                [v, v * v]
            });
            (s + rs, q + rq)
        })
    }
}

/// `y = max?(x·scale + shift)` over one run of one channel.
struct NormalizeRun<'a> {
    input: &'a [f32],
    out: &'a mut [f32],
    scale: f64,
    shift: f64,
    relu: bool,
}

impl WithSimd for NormalizeRun<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let (scale, shift) = (self.scale, self.shift);
        if self.relu {
            for (o, &v) in self.out.iter_mut().zip(self.input) {
                *o = ((f64::from(v) * scale + shift) as f32).max(0.0);
            }
        } else {
            for (o, &v) in self.out.iter_mut().zip(self.input) {
                *o = (f64::from(v) * scale + shift) as f32;
            }
        }
    }
}

/// One channel's constants for the backward: its statistics, `γ`, `β` and whether ReLU followed.
#[derive(Clone, Copy)]
struct ChannelBackward {
    stats: ChannelStats,
    gamma: f64,
    beta: f64,
    relu: bool,
}

impl ChannelBackward {
    /// `x̂` of `v`, and the gradient `g` that reaches the BatchNorm's output through ReLU's mask
    /// (recomputed from `x`). In f64: `x − μ` of a channel far from zero mean keeps its digits.
    #[inline(always)]
    fn masked(self, v: f32, g: f32) -> (f64, f64) {
        let normalized = (f64::from(v) - self.stats.mean) * self.stats.inv_std;
        let g = if self.relu && normalized * self.gamma + self.beta <= 0.0 { 0.0 } else { f64::from(g) };
        (normalized, g)
    }
}

/// `Σg` and `Σg·x̂` of one channel.
struct GradientSums<'a> {
    x: &'a [f32],
    grad_y: &'a [f32],
    layout: Layout,
    channel: usize,
    constants: ChannelBackward,
}

impl WithSimd for GradientSums<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> (f64, f64) {
        let constants = self.constants;
        let (mut sum_g, mut sum_g_normalized) = (0.0f64, 0.0f64);
        for (xs, gs) in self.layout.runs(self.x, self.channel).zip(self.layout.runs(self.grad_y, self.channel)) {
            let [rg, rgn] = lane_sums_pairs(xs, gs, |v, g| {
                let (normalized, g) = constants.masked(v, g);
                [g, g * normalized]
            });
            sum_g += rg;
            sum_g_normalized += rgn;
        }
        (sum_g, sum_g_normalized)
    }
}

/// `∂x = γ/√(σ² + ε) · (g − mean(g) − x̂·mean(g·x̂))` over one run of one channel.
struct InputGradientRun<'a> {
    xs: &'a [f32],
    gs: &'a [f32],
    out: &'a mut [f32],
    constants: ChannelBackward,
    mean_g: f64,
    mean_g_normalized: f64,
}

impl WithSimd for InputGradientRun<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let constants = self.constants;
        let scale = constants.gamma * constants.stats.inv_std;
        let (mean_g, mean_gn) = (self.mean_g, self.mean_g_normalized);
        for ((o, &v), &g) in self.out.iter_mut().zip(self.xs).zip(self.gs) {
            let (normalized, g) = constants.masked(v, g);
            *o = (scale * (g - mean_g - normalized * mean_gn)) as f32;
        }
    }
}

/// The forward: writes `y` and returns each channel's statistics.
pub(crate) fn forward(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64, relu: bool, layout: Layout, y: &mut [f32]) -> Vec<ChannelStats> {
    debug_assert_eq!(x.len(), layout.len());
    debug_assert_eq!(y.len(), layout.len());
    let m = layout.per_channel().max(1) as f64;
    let arch = Arch::new();
    let stats: Vec<ChannelStats> = (0..layout.channels)
        .into_par_iter()
        .map(|channel| {
            // One pass: in f64, E[x²] − μ² loses nothing that matters for activations.
            let (sum, sum_squares) = arch.dispatch(ChannelSums { x, layout, channel });
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
        arch.dispatch(NormalizeRun { input, out, scale, shift, relu });
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
    let constants = |c: usize| ChannelBackward { stats: stats[c], gamma: f64::from(gamma[c]), beta: f64::from(beta[c]), relu };
    let sums: Vec<(f64, f64)> = (0..layout.channels)
        .into_par_iter()
        .map(|channel| arch.dispatch(GradientSums { x, grad_y, layout, channel, constants: constants(channel) }))
        .collect();
    let grad_x = want_x.then(|| {
        let mut grad_x = vec![0.0f32; layout.len()];
        let plane = layout.plane.max(1);
        grad_x.par_chunks_mut(plane).zip(x.par_chunks(plane).zip(grad_y.par_chunks(plane))).enumerate().for_each(|(run, (out, (xs, gs)))| {
            let c = run % layout.channels;
            let (sum_g, sum_gn) = sums[c];
            arch.dispatch(InputGradientRun { xs, gs, out, constants: constants(c), mean_g: sum_g / m, mean_g_normalized: sum_gn / m });
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
