//! `bench --only train-ops`: what the training step's convolutions cost (issue 13 item 1, the
//! profile behind the training goal).
//!
//! Every convolution of the compact backbone at batch 64 of 1×28×28 (stem, both convolutions
//! of each BasicBlock, the 1×1 downsamples; shapes from [`BackboneSpec`], identical shapes timed
//! once and counted), each as the three primitive operations a training step runs for it: the
//! forward convolution, the input gradient (a transposed convolution, as burn's autodiff
//! computes it) and the weight gradient (`conv2d_weight_backward`). The totals weight each
//! shape by how often the network uses it, so they sit beside the step's phases of the `ops`
//! group. `scripts/pytorch_bench.py --only train-ops` times the same primitives in PyTorch
//! (`aten::convolution_backward` with one gradient asked for at a time) under the same names.
//!
//! The primitives run on the kernels the step's convolutions run on (`--conv-kernels`, the
//! report's `conv_kernels`): oneDNN's `Conv2dKernels` passes on the same host buffers, or
//! burn flex's operations (the input gradient as burn's autodiff computes it).
//!
//! flex and oneDNN run each operation to completion before returning, so timing one at a time
//! is exact; this group refuses other devices, like `ops`.

use super::{Bench, Figure, figure, time};
use anyhow::{Result, bail};
use bottlenet_model::{Arch, BackboneConfig, BlockKind, ConvKernels, DeviceChoice};
use bottlenet_onednn::{Conv2dKernels, Conv2dShape};
use burn::tensor::module::{conv_transpose2d, conv2d, conv2d_weight_backward};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Distribution, Tensor};
use std::collections::BTreeMap;

/// The batch the training step (`train` and `ops` groups, `configs/*.toml`) uses.
const BATCH: usize = 64;
/// The compact network's input side (Fashion-MNIST).
const SIDE: usize = 28;

/// One convolution as the training step runs it, in NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConvShape {
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    /// Input height = width.
    side: usize,
}

impl ConvShape {
    fn out_side(&self) -> usize {
        (self.side + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// The name both benches print: `conv 3x3/2 16→32 at 28x28`.
    fn label(&self) -> String {
        let stride = if self.stride == 1 { String::new() } else { format!("/{}", self.stride) };
        format!("conv {k}x{k}{stride} {}→{} at {s}x{s}", self.c_in, self.c_out, k = self.kernel, s = self.side)
    }

    /// The same convolution at `batch` for oneDNN.
    fn onednn(&self, batch: usize) -> Conv2dShape {
        Conv2dShape::new(batch, self.c_in, self.c_out, [self.side; 2], self.kernel, self.stride, self.padding)
    }

    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1)
    }

    /// The transposed convolution that maps the output gradient back onto the input: its
    /// output padding restores the input rows a strided convolution never reached.
    fn input_grad_options(&self) -> ConvTransposeOptions<2> {
        let reached = (self.out_side() - 1) * self.stride + self.kernel - 2 * self.padding;
        let out_padding = self.side - reached;
        ConvTransposeOptions::new([self.stride; 2], [self.padding; 2], [out_padding; 2], [1, 1], 1)
    }
}

/// Every convolution of `arch`'s backbone for a `side`×`side` input, with how many times each
/// distinct shape occurs, in first-use order.
fn backbone_convs(arch: Arch, in_channels: usize, side: usize) -> Result<Vec<(ConvShape, usize)>> {
    let spec = BackboneConfig::new(arch, in_channels, 10).spec()?;
    let mut convs = Vec::new();
    let stem = spec.stem;
    convs.push(ConvShape { c_in: stem.in_channels, c_out: stem.out_channels, kernel: stem.kernel, stride: stem.stride, padding: stem.padding, side });
    let mut side = convs[0].out_side();
    if stem.max_pool {
        side = (side + 2 - 3) / 2 + 1;
    }
    for block in &spec.blocks {
        let (cin, planes, cout, s) = (block.in_channels, block.planes, block.out_channels, block.stride);
        let out = (side - 1) / s + 1;
        match block.kind {
            BlockKind::Basic => {
                convs.push(ConvShape { c_in: cin, c_out: cout, kernel: 3, stride: s, padding: 1, side });
                convs.push(ConvShape { c_in: cout, c_out: cout, kernel: 3, stride: 1, padding: 1, side: out });
            }
            BlockKind::Bottleneck => {
                convs.push(ConvShape { c_in: cin, c_out: planes, kernel: 1, stride: 1, padding: 0, side });
                convs.push(ConvShape { c_in: planes, c_out: planes, kernel: 3, stride: s, padding: 1, side });
                convs.push(ConvShape { c_in: planes, c_out: cout, kernel: 1, stride: 1, padding: 0, side: out });
            }
        }
        if block.downsample {
            convs.push(ConvShape { c_in: cin, c_out: cout, kernel: 1, stride: s, padding: 0, side });
        }
        side = out;
    }
    let mut counted: Vec<(ConvShape, usize)> = Vec::new();
    for conv in convs {
        match counted.iter_mut().find(|(c, _)| *c == conv) {
            Some((_, n)) => *n += 1,
            None => counted.push((conv, 1)),
        }
    }
    Ok(counted)
}

impl Bench<'_> {
    pub(super) fn train_ops(&mut self) -> Result<()> {
        if self.args.device != DeviceChoice::Flex {
            bail!("bench --only train-ops times one operation at a time, which is exact only on flex; run it with --device flex");
        }
        let (warmup, runs) = (self.args.warmup, self.args.runs);
        let device = self.device.clone();
        let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
        for (conv, count) in backbone_convs(Arch::Compact, 1, SIDE)? {
            let x = Tensor::<4>::random([BATCH, conv.c_in, conv.side, conv.side], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([conv.c_out, conv.c_in, conv.kernel, conv.kernel], Distribution::Normal(0.0, 0.1), &device);
            let dy = Tensor::<4>::random([BATCH, conv.c_out, conv.out_side(), conv.out_side()], Distribution::Normal(0.0, 1.0), &device);
            let phases: [(&str, Vec<f64>); 3] = match bottlenet_model::conv_kernels() {
                ConvKernels::OneDnn => onednn_phases(&conv, [&x, &w, &dy], warmup, runs)?,
                ConvKernels::Burn => [
                    // Each result is read back to the host, so a time covers the whole operation.
                    ("forward", time(warmup, runs, 1e3, || {
                        conv2d(x.clone(), w.clone(), None, conv.options()).into_data();
                        Ok(())
                    })?),
                    ("input grad", time(warmup, runs, 1e3, || {
                        conv_transpose2d(dy.clone(), w.clone(), None, conv.input_grad_options()).into_data();
                        Ok(())
                    })?),
                    ("weight grad", time(warmup, runs, 1e3, || {
                        conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), conv.options()).into_data();
                        Ok(())
                    })?),
                ],
            };
            let kernels = bottlenet_model::conv_kernels().name();
            for (phase, samples) in phases {
                let f = figure("train-ops", format!("b{BATCH} {}: {phase}", conv.label()), "ms", samples, format!("×{count} in the network, {kernels}"));
                *totals.entry(phase).or_default() += f.median * count as f64;
                self.push(f);
            }
        }
        let sum: f64 = totals.values().sum();
        for (phase, ms) in totals.into_iter().chain([("all three", sum)]) {
            self.push(Figure { note: "medians × uses, summed".into(), ..figure("train-ops", format!("b{BATCH} every backbone conv: {phase}"), "ms", vec![ms], String::new()) });
        }
        Ok(())
    }
}

/// The three passes of `conv` on oneDNN, on the host copies of `x`, `w` and `dy` (the buffers
/// the training step hands it), each output written in full by every call.
fn onednn_phases(conv: &ConvShape, [x, w, dy]: [&Tensor<4>; 3], warmup: usize, runs: usize) -> Result<[(&'static str, Vec<f64>); 3]> {
    let host = |t: &Tensor<4>| t.to_data().try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("reading a tensor back: {e:?}"));
    let (x, w, dy) = (host(x)?, host(w)?, host(dy)?);
    let mut kernels = Conv2dKernels::new(conv.onednn(BATCH))?;
    let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
    Ok([
        ("forward", time(warmup, runs, 1e3, || Ok(kernels.forward(&x, &w, None, &mut y)?))?),
        ("input grad", time(warmup, runs, 1e3, || Ok(kernels.backward_data(&dy, &w, &mut dx)?))?),
        ("weight grad", time(warmup, runs, 1e3, || Ok(kernels.backward_weights(&x, &dy, &mut dw, None)?))?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_backbone_has_fifteen_convolutions_in_eight_shapes() {
        let convs = backbone_convs(Arch::Compact, 1, SIDE).expect("spec");
        assert_eq!(convs.iter().map(|(_, n)| n).sum::<usize>(), 15);
        assert_eq!(convs.len(), 8);
        assert_eq!(convs[0].0.label(), "conv 3x3 1→16 at 28x28");
        assert_eq!(convs[1], (ConvShape { c_in: 16, c_out: 16, kernel: 3, stride: 1, padding: 1, side: 28 }, 4));
        let down = convs.iter().find(|(c, _)| c.kernel == 1 && c.c_out == 64).expect("layer3 downsample");
        assert_eq!((down.0.side, down.0.stride, down.0.out_side()), (14, 2, 7));
    }

    #[test]
    fn the_input_gradient_has_the_input_shape() {
        let device = DeviceChoice::Flex.device().expect("flex");
        for (conv, _) in backbone_convs(Arch::Compact, 1, SIDE).expect("spec") {
            let w = Tensor::<4>::zeros([conv.c_out, conv.c_in, conv.kernel, conv.kernel], &device);
            let dy = Tensor::<4>::zeros([2, conv.c_out, conv.out_side(), conv.out_side()], &device);
            let dx = conv_transpose2d(dy, w, None, conv.input_grad_options());
            assert_eq!(dx.dims(), [2, conv.c_in, conv.side, conv.side], "{}", conv.label());
        }
    }
}
