//! A separable max-pool for tract plans: the ResNet stem's 3×3 stride-2 max-pool, which tract's
//! own `OptMaxPool` runs element by element (1.22 ms of the ResNet-50 RB1 phone half's 9 ms,
//! `bench --only tract-ops`), computed as a max over kernel rows (contiguous, vectorised) and
//! then over kernel columns.
//!
//! Invariant: the op replaces a tract `MaxPool` only where its answer is the same bit for bit:
//! f32, NCHW, dilation 1, explicit padding without ceil mode, no arg-max output. Padding counts
//! as −∞ (a window's max is over its valid cells only), as ONNX MaxPool defines it; every window
//! holds at least one valid cell because the padding is smaller than the kernel.

use tract_onnx::prelude::{TractResult, TypedModel};
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// One spatial axis of the pool: kernel, stride and the padding before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Axis {
    kernel: usize,
    stride: usize,
    pad_before: usize,
}

impl Axis {
    /// Input indices `[first, end)` of output position `o` on an axis of `len` cells.
    fn window(&self, o: usize, len: usize) -> (usize, usize) {
        let start = o * self.stride;
        let first = start.saturating_sub(self.pad_before);
        let end = (start + self.kernel).saturating_sub(self.pad_before).min(len);
        (first, end)
    }

    /// `out[o]` = max of `row`'s cells in window `o`. `row` is first split into its `stride`
    /// phases (phase `r` holds cells `r, r + stride, …`, laid end to end in `phases`), so that
    /// for the windows wholly inside `row` each kernel tap reads one contiguous, shifted run of
    /// one phase: an element-wise max of slices, which the compiler vectorises. The few windows
    /// at the edges are clipped one by one.
    fn max_along(&self, row: &[f32], out: &mut [f32], phases: &mut Vec<f32>) {
        let (len, stride) = (row.len(), self.stride);
        let window_max = |(first, end): (usize, usize)| row[first + 1..end].iter().fold(row[first], |m, &v| m.max(v));
        // Interior: start − pad_before ≥ 0 and start − pad_before + kernel ≤ len.
        let lo = self.pad_before.div_ceil(stride).min(out.len());
        let hi = if len + self.pad_before >= self.kernel { ((len + self.pad_before - self.kernel) / stride + 1).clamp(lo, out.len()) } else { lo };
        for (o, value) in out.iter_mut().enumerate().take(lo) {
            *value = window_max(self.window(o, len));
        }
        for (o, value) in out.iter_mut().enumerate().skip(hi) {
            *value = window_max(self.window(o, len));
        }
        if lo == hi {
            return;
        }
        let phase_len = len.div_ceil(stride);
        phases.clear();
        phases.resize(stride * phase_len, f32::NEG_INFINITY);
        for (phase, run) in phases.chunks_exact_mut(phase_len).enumerate() {
            for (cell, &v) in run.iter_mut().zip(row.iter().skip(phase).step_by(stride)) {
                *cell = v;
            }
        }
        let interior = &mut out[lo..hi];
        for tap in 0..self.kernel {
            // Cell of window o, tap t: o·stride + (t − pad_before), in phase (t − pad_before)
            // mod stride at o + ⌊(t − pad_before) / stride⌋.
            let offset = tap as isize - self.pad_before as isize;
            let (phase, shift) = (offset.rem_euclid(stride as isize) as usize, offset.div_euclid(stride as isize));
            let first = (lo as isize + shift) as usize;
            let source = &phases[phase * phase_len + first..phase * phase_len + first + interior.len()];
            if tap == 0 {
                interior.copy_from_slice(source);
            } else {
                for (value, &v) in interior.iter_mut().zip(source) {
                    *value = value.max(v);
                }
            }
        }
    }
}

/// Max-pool over NCHW f32, rows first, then columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeparableMaxPool {
    rows: Axis,
    cols: Axis,
    /// Output height and width (checked against tract's own pool when the op is put in).
    out: [usize; 2],
}

impl SeparableMaxPool {
    /// The separable pool for `pool` on an input of concrete shape `[n, c, h, w]`, where it gives
    /// the same answer (module invariant); `None` leaves tract's op in place.
    fn for_pool(pool: &MaxPool, input: &TypedFact) -> Option<Self> {
        let spec = &pool.pool_spec;
        let shape = input.shape.as_concrete()?;
        let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&d| d == 1));
        if pool.with_index_outputs.is_some() || input.datum_type != f32::datum_type() || spec.data_format != DataFormat::NCHW || shape.len() != 4 || spec.kernel_shape.len() != 2 || !ones(&spec.dilations) {
            return None;
        }
        let (before, after) = match &spec.padding {
            PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => (b.clone(), a.clone()),
            PaddingSpec::Valid => (tvec![0, 0], tvec![0, 0]),
            _ => return None,
        };
        let strides = spec.strides.clone().unwrap_or_else(|| tvec![1, 1]);
        let mut out = [0; 2];
        let mut axes = [Axis { kernel: 0, stride: 0, pad_before: 0 }; 2];
        for i in 0..2 {
            let (len, kernel, stride) = (shape[2 + i], spec.kernel_shape[i], strides[i]);
            if stride == 0 || kernel == 0 || before[i] >= kernel || after[i] >= kernel || len + before[i] + after[i] < kernel {
                return None;
            }
            out[i] = (len + before[i] + after[i] - kernel) / stride + 1;
            axes[i] = Axis { kernel, stride, pad_before: before[i] };
        }
        Some(Self { rows: axes[0], cols: axes[1], out })
    }

    fn pool(&self, input: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
        let [oh, ow] = self.out;
        let mut out = vec![0.0f32; n * c * oh * ow];
        let mut row_max = vec![0.0f32; w];
        let mut phases = Vec::with_capacity(w + self.cols.stride);
        for (plane, out_plane) in input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
            for (oy, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
                let (first, end) = self.rows.window(oy, h);
                row_max.copy_from_slice(&plane[first * w..(first + 1) * w]);
                for y in first + 1..end {
                    for (m, &v) in row_max.iter_mut().zip(&plane[y * w..(y + 1) * w]) {
                        *m = m.max(v);
                    }
                }
                self.cols.max_along(&row_max, out_row, &mut phases);
            }
        }
        out
    }
}

impl Op for SeparableMaxPool {
    fn name(&self) -> StaticName {
        "SeparableMaxPool".into()
    }

    op_as_typed_op!();
}

impl EvalOp for SeparableMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let [n, c, h, w] = match *input.shape() {
            [n, c, h, w] => [n, c, h, w],
            ref other => bail!("SeparableMaxPool takes NCHW input, got shape {other:?}"),
        };
        let view = input.try_as_plain_ram()?;
        let values = self.pool(view.as_slice::<f32>()?, [n, c, h, w]);
        let shape = [n, c, self.out[0], self.out[1]];
        Ok(tvec!(tract_ndarray::ArrayD::from_shape_vec(&shape[..], values)?.into_tvalue()))
    }
}

impl TypedOp for SeparableMaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0].shape.as_concrete().ok_or_else(|| format_err!("SeparableMaxPool needs a concrete input shape"))?;
        Ok(tvec!(f32::fact([shape[0], shape[1], self.out[0], self.out[1]])))
    }

    as_op!();
}

/// Puts [`SeparableMaxPool`] in place of every tract `MaxPool` of `model` it answers for
/// exactly (module invariant), after checking that both give the same output shape; returns
/// how many it replaced. Run it on a decluttered model, before optimisation.
pub fn replace_max_pools(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(pool) = node.op_as::<MaxPool>() else { continue };
        let input = model.outlet_fact(node.inputs[0])?.clone();
        let Some(op) = SeparableMaxPool::for_pool(pool, &input) else { continue };
        let shape = |facts: TVec<TypedFact>| facts.first().map(|f| f.shape.clone());
        if shape(pool.output_facts(&[&input])?) != shape(op.output_facts(&[&input])?) {
            continue;
        }
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: each output is the max of the valid input cells of its window.
    fn naive(input: &[f32], [n, c, h, w]: [usize; 4], k: [usize; 2], s: [usize; 2], p: [usize; 2], out: [usize; 2]) -> Vec<f32> {
        let mut result = Vec::new();
        for plane in 0..n * c {
            for oy in 0..out[0] {
                for ox in 0..out[1] {
                    let mut m = f32::NEG_INFINITY;
                    for dy in 0..k[0] {
                        for dx in 0..k[1] {
                            let (y, x) = ((oy * s[0] + dy) as isize - p[0] as isize, (ox * s[1] + dx) as isize - p[1] as isize);
                            if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                                m = m.max(input[plane * h * w + y as usize * w + x as usize]);
                            }
                        }
                    }
                    result.push(m);
                }
            }
        }
        result
    }

    #[test]
    fn equals_the_definition_bit_for_bit_on_odd_sizes_strides_and_paddings() {
        let cases: [([usize; 4], [usize; 2], [usize; 2], [usize; 2]); 5] = [
            ([1, 64, 112, 112], [3, 3], [2, 2], [1, 1]), // ResNet's stem
            ([2, 3, 7, 9], [3, 3], [2, 2], [1, 1]),
            ([1, 2, 8, 5], [2, 3], [2, 1], [0, 1]),
            ([1, 1, 5, 5], [5, 5], [1, 1], [2, 2]),
            ([3, 2, 6, 6], [1, 1], [3, 3], [0, 0]),
        ];
        for (shape, k, s, p) in cases {
            let [n, c, h, w] = shape;
            let out = [(h + 2 * p[0] - k[0]) / s[0] + 1, (w + 2 * p[1] - k[1]) / s[1] + 1];
            // Negative values too, so a pad counted as 0 would show.
            let input: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 37.0).collect();
            let op = SeparableMaxPool {
                rows: Axis { kernel: k[0], stride: s[0], pad_before: p[0] },
                cols: Axis { kernel: k[1], stride: s[1], pad_before: p[1] },
                out,
            };
            let ours = op.pool(&input, shape);
            let want = naive(&input, shape, k, s, p, out);
            assert!(ours.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()) && ours.len() == want.len(), "{shape:?} k {k:?} s {s:?} p {p:?}");
        }
    }
}
