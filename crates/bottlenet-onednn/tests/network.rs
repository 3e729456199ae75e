//! [`Network`] layer by layer against direct NCHW definitions (f64 accumulation): convolutions
//! with groups, stride, dilation and asymmetric padding, fused ReLU and BatchNorm, residual sums
//! written in place and into a copy, transposed convolutions, max pooling, global average
//! pooling and the fully-connected layer (after a blocked convolution output, in NCHW order).

use bottlenet_onednn::{Error, Network, NetworkBuilder, ValueId, Window};

/// `builder` planned up to `output`, or `None` (after checking the refusal) where oneDNN is not
/// linked. With `CI` set, not being linked is a failure.
fn plan(builder: NetworkBuilder, output: ValueId, threads: usize) -> Option<Network> {
    match builder.build(output, threads) {
        Ok(network) => Some(network),
        Err(Error::NotLinked) => {
            assert!(std::env::var_os("CI").is_none(), "CI is set but bottlenet-onednn was built without oneDNN: install libdnnl-dev");
            eprintln!("bottlenet-onednn: oneDNN not linked; checked that planning returns Error::NotLinked");
            None
        }
        Err(e) => panic!("planning failed: {e}"),
    }
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// An NCHW tensor of f64 for the references.
#[derive(Clone)]
struct Tensor {
    dims: [usize; 4],
    data: Vec<f64>,
}

impl Tensor {
    fn from_f32(dims: [usize; 4], data: &[f32]) -> Self {
        Self { dims, data: data.iter().map(|&v| f64::from(v)).collect() }
    }

    fn at(&self, n: usize, c: usize, h: usize, w: usize) -> f64 {
        let [_, cs, hs, ws] = self.dims;
        self.data[((n * cs + c) * hs + h) * ws + w]
    }

    fn map(mut self, f: impl Fn(f64) -> f64) -> Self {
        self.data.iter_mut().for_each(|v| *v = f(*v));
        self
    }

    fn plus(mut self, other: &Tensor) -> Self {
        assert_eq!(self.dims, other.dims);
        self.data.iter_mut().zip(&other.data).for_each(|(a, b)| *a += b);
        self
    }
}

fn relu(t: Tensor) -> Tensor {
    t.map(|v| v.max(0.0))
}

/// The position an output index `o` reads at tap `k` along one axis, if inside the input.
fn tap(o: usize, k: usize, stride: usize, dilation: usize, before: usize, size: usize) -> Option<usize> {
    let i = (o * stride + k * dilation) as isize - before as isize;
    (0..size as isize).contains(&i).then_some(i as usize)
}

/// ONNX `Conv` (weight `[O, C/g, kh, kw]`).
fn conv(x: &Tensor, win: &Window, groups: usize, out: usize, weight: &[f32], bias: &[f32]) -> Tensor {
    let [n, c, h, w] = x.dims;
    let ext = |a: usize| (win.kernel[a] - 1) * win.dilation[a] + 1;
    let oh = (h + win.padding[0] + win.padding[2] - ext(0)) / win.stride[0] + 1;
    let ow = (w + win.padding[1] + win.padding[3] - ext(1)) / win.stride[1] + 1;
    let (cg, og) = (c / groups, out / groups);
    let [kh, kw] = win.kernel;
    let mut data = Vec::with_capacity(n * out * oh * ow);
    for b in 0..n {
        for o in 0..out {
            let g = o / og;
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = f64::from(bias[o]);
                    for ci in 0..cg {
                        for ky in 0..kh {
                            let Some(iy) = tap(y, ky, win.stride[0], win.dilation[0], win.padding[0], h) else { continue };
                            for kx in 0..kw {
                                let Some(ix) = tap(xo, kx, win.stride[1], win.dilation[1], win.padding[1], w) else { continue };
                                acc += f64::from(weight[((o * cg + ci) * kh + ky) * kw + kx]) * x.at(b, g * cg + ci, iy, ix);
                            }
                        }
                    }
                    data.push(acc);
                }
            }
        }
    }
    Tensor { dims: [n, out, oh, ow], data }
}

/// ONNX `ConvTranspose` (weight `[C, O/g, kh, kw]`, `output_padding` at the bottom and right):
/// every input pixel scatters its kernel.
fn deconv(x: &Tensor, win: &Window, output_padding: [usize; 2], groups: usize, out: usize, weight: &[f32], bias: &[f32]) -> Tensor {
    let [n, c, h, w] = x.dims;
    let ext = |a: usize| (win.kernel[a] - 1) * win.dilation[a] + 1;
    let full_h = (h - 1) * win.stride[0] + ext(0) + output_padding[0];
    let full_w = (w - 1) * win.stride[1] + ext(1) + output_padding[1];
    let (oh, ow) = (full_h - win.padding[0] - win.padding[2], full_w - win.padding[1] - win.padding[3]);
    let (cg, og) = (c / groups, out / groups);
    let [kh, kw] = win.kernel;
    let mut data = vec![0.0; n * out * oh * ow];
    for b in 0..n {
        for o in 0..out {
            let plane = &mut data[(b * out + o) * oh * ow..][..oh * ow];
            plane.iter_mut().for_each(|v| *v = f64::from(bias[o]));
            let g = o / og;
            for ci in 0..cg {
                let i = g * cg + ci;
                for y in 0..h {
                    for xi in 0..w {
                        for ky in 0..kh {
                            let Some(py) = (y * win.stride[0] + ky * win.dilation[0]).checked_sub(win.padding[0]).filter(|&p| p < oh) else { continue };
                            for kx in 0..kw {
                                let Some(px) = (xi * win.stride[1] + kx * win.dilation[1]).checked_sub(win.padding[1]).filter(|&p| p < ow) else { continue };
                                plane[py * ow + px] += f64::from(weight[((i * og + o % og) * kh + ky) * kw + kx]) * x.at(b, i, y, xi);
                            }
                        }
                    }
                }
            }
        }
    }
    Tensor { dims: [n, out, oh, ow], data }
}

fn max_pool(x: &Tensor, win: &Window) -> Tensor {
    let [n, c, h, w] = x.dims;
    let oh = (h + win.padding[0] + win.padding[2] - win.kernel[0]) / win.stride[0] + 1;
    let ow = (w + win.padding[1] + win.padding[3] - win.kernel[1]) / win.stride[1] + 1;
    let mut data = Vec::new();
    for b in 0..n {
        for ch in 0..c {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut best = f64::NEG_INFINITY;
                    for ky in 0..win.kernel[0] {
                        let Some(iy) = tap(y, ky, win.stride[0], 1, win.padding[0], h) else { continue };
                        for kx in 0..win.kernel[1] {
                            let Some(ix) = tap(xo, kx, win.stride[1], 1, win.padding[1], w) else { continue };
                            best = best.max(x.at(b, ch, iy, ix));
                        }
                    }
                    data.push(best);
                }
            }
        }
    }
    Tensor { dims: [n, c, oh, ow], data }
}

fn global_average_pool(x: &Tensor) -> Tensor {
    let [n, c, h, w] = x.dims;
    let data = x.data.chunks_exact(h * w).map(|plane| plane.iter().sum::<f64>() / (h * w) as f64).collect();
    Tensor { dims: [n, c, 1, 1], data }
}

/// `W·flatten(x) + b`, `W` as `[outputs, c·h·w]`: `[n, outputs]` as `[n, outputs, 1, 1]`.
fn fully_connected(x: &Tensor, outputs: usize, weight: &[f32], bias: &[f32]) -> Tensor {
    let per_sample = x.data.len() / x.dims[0];
    let mut data = Vec::new();
    for sample in x.data.chunks_exact(per_sample) {
        for o in 0..outputs {
            data.push(f64::from(bias[o]) + sample.iter().zip(&weight[o * per_sample..][..per_sample]).map(|(v, w)| v * f64::from(*w)).sum::<f64>());
        }
    }
    Tensor { dims: [x.dims[0], outputs, 1, 1], data }
}

/// Runs `network` on `input` and checks it against `want` within 1e-4 of `want`'s scale.
fn check(what: &str, network: &mut Network, input: &[f32], want: &Tensor) {
    assert_eq!(network.output_dims(), want.dims, "{what}: output dims");
    let mut got = vec![f32::NAN; want.data.len()];
    // Twice: a second run over the same buffers must give the same answer (no state leaks).
    for round in 0..2 {
        network.run(input, &mut got).unwrap();
        let scale = want.data.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let diff = got.iter().zip(&want.data).map(|(g, w)| (f64::from(*g) - w).abs()).fold(0.0, f64::max);
        assert!(diff <= 1e-4 * scale, "{what}, run {round}: differs by {diff} at scale {scale}");
    }
}

fn window(k: usize, s: usize, p: usize) -> Window {
    Window { kernel: [k, k], stride: [s, s], dilation: [1, 1], padding: [p; 4] }
}

#[test]
fn a_grouped_dilated_strided_asymmetric_convolution_with_relu() {
    let dims = [2, 6, 13, 11];
    let input = values(dims.iter().product(), 1);
    let win = Window { kernel: [3, 2], stride: [2, 1], dilation: [2, 3], padding: [1, 0, 2, 1] };
    let (weight, bias) = (values(8 * 3 * 6, 2), values(8, 3));
    let mut b = NetworkBuilder::new(2, [6, 13, 11]).unwrap();
    let y = b.convolution(b.input(), win, 2, 8, weight.clone(), bias.clone()).unwrap();
    assert!(b.fuse_relu(y));
    let want = relu(conv(&Tensor::from_f32(dims, &input), &win, 2, 8, &weight, &bias));
    for threads in [1, 2] {
        let Some(mut network) = plan(b.clone(), y, threads) else { return };
        assert_eq!(network.threads(), threads);
        assert!(network.describe().iter().all(|d| d.starts_with("convolution")), "{:?}", network.describe());
        check(&format!("grouped convolution, {threads} threads"), &mut network, &input, &want);
    }
}

#[test]
fn residual_sums_in_place_and_into_a_copy() {
    let dims = [1, 8, 9, 9];
    let input = values(dims.iter().product(), 4);
    let x = Tensor::from_f32(dims, &input);
    let w = |seed| (values(8 * 8 * 9, seed), values(8, seed + 100));
    let [(wa, ba), (wb, bb), (wc, bc), (wd, bd)] = [w(5), w(6), w(7), w(8)];
    let mut b = NetworkBuilder::new(1, [8, 9, 9]).unwrap();
    let a = b.convolution(b.input(), window(3, 1, 1), 1, 8, wa.clone(), ba.clone()).unwrap();
    // conv(a) + a: `a` is read again below, so the sum goes into a copy of it.
    let conv_b = b.convolution(a, window(3, 1, 1), 1, 8, wb.clone(), bb.clone()).unwrap();
    let s = b.add(conv_b, a, [true, false]).unwrap();
    assert_eq!(s, conv_b);
    assert!(b.fuse_relu(s));
    // conv(a) + s: this is s's last reader, so the sum is written into s itself.
    let conv_c = b.convolution(a, window(3, 1, 1), 1, 8, wc.clone(), bc.clone()).unwrap();
    let t = b.add(s, conv_c, [true, true]).unwrap();
    assert_eq!(t, conv_c, "the later-made operand carries the sum");
    // conv(t) + the network's input: never written into, so a copy.
    let conv_d = b.convolution(t, window(3, 1, 1), 1, 8, wd.clone(), bd.clone()).unwrap();
    let u = b.add(conv_d, b.input(), [true, false]).unwrap();

    let ra = conv(&x, &window(3, 1, 1), 1, 8, &wa, &ba);
    let rs = relu(conv(&ra, &window(3, 1, 1), 1, 8, &wb, &bb).plus(&ra));
    let rt = conv(&ra, &window(3, 1, 1), 1, 8, &wc, &bc).plus(&rs);
    let ru = conv(&rt, &window(3, 1, 1), 1, 8, &wd, &bd).plus(&x);
    let Some(mut network) = plan(b, u, 2) else { return };
    assert_eq!(network.describe().iter().filter(|d| d.contains("+ sum")).count(), 3, "{:?}", network.describe());
    let before = input.clone();
    check("residual sums", &mut network, &input, &ru);
    assert_eq!(input, before, "the caller's input is only read");
}

#[test]
fn a_transposed_convolution_with_batchnorm_folded_and_relu() {
    let dims = [2, 4, 5, 6];
    let input = values(dims.iter().product(), 9);
    let mut win = window(3, 2, 1);
    win.padding = [1, 0, 1, 1];
    let (weight, bias) = (values(4 * 3 * 9, 10), values(6, 11));
    let (scale, shift) = (values(6, 12), values(6, 13));
    let mut b = NetworkBuilder::new(2, [4, 5, 6]).unwrap();
    let y = b.deconvolution(b.input(), win, [1, 1], 2, 6, weight.clone(), bias.clone()).unwrap();
    assert!(b.fold_affine(y, &scale, &shift));
    assert!(b.fuse_relu(y));
    let plain = deconv(&Tensor::from_f32(dims, &input), &win, [1, 1], 2, 6, &weight, &bias);
    let mut want = plain.clone();
    let plane = want.dims[2] * want.dims[3];
    for (i, v) in want.data.iter_mut().enumerate() {
        let channel = (i / plane) % 6;
        *v = (*v * f64::from(scale[channel]) + f64::from(shift[channel])).max(0.0);
    }
    assert_eq!(want.dims, [2, 6, 10, 13]);
    let Some(mut network) = plan(b, y, 2) else { return };
    check("transposed convolution", &mut network, &input, &want);
}

#[test]
fn a_classifier_max_pool_global_pool_and_fully_connected() {
    let dims = [2, 3, 17, 17];
    let input = values(dims.iter().product(), 14);
    let x = Tensor::from_f32(dims, &input);
    let (w1, b1) = (values(16 * 3 * 49, 15), values(16, 16));
    let (w2, b2) = (values(10 * 16, 17), values(10, 18));
    let mut b = NetworkBuilder::new(2, [3, 17, 17]).unwrap();
    let stem = b.convolution(b.input(), window(7, 2, 3), 1, 16, w1.clone(), b1.clone()).unwrap();
    // No ReLU before the pool: the stem's negative values meet the padding, which never wins.
    let pooled = b.max_pool(stem, window(3, 2, 1)).unwrap();
    let mean = b.global_average_pool(pooled).unwrap();
    let logits = b.fully_connected(mean, 10, w2.clone(), b2.clone()).unwrap();
    let r_pooled = max_pool(&conv(&x, &window(7, 2, 3), 1, 16, &w1, &b1), &window(3, 2, 1));
    let want = fully_connected(&global_average_pool(&r_pooled), 10, &w2, &b2);
    let Some(mut network) = plan(b.clone(), logits, 1) else { return };
    check("classifier", &mut network, &input, &want);
    let Some(mut network) = plan(b, pooled, 2) else { return };
    check("up to the max pool", &mut network, &input, &r_pooled);
}

#[test]
fn a_fully_connected_layer_flattens_a_blocked_output_in_nchw_order() {
    let dims = [1, 3, 6, 5];
    let input = values(dims.iter().product(), 19);
    let (w1, b1) = (values(16 * 3 * 9, 20), values(16, 21));
    let (w2, b2) = (values(7 * 16 * 30, 22), values(7, 23));
    let mut b = NetworkBuilder::new(1, [3, 6, 5]).unwrap();
    let features = b.convolution(b.input(), window(3, 1, 1), 1, 16, w1.clone(), b1.clone()).unwrap();
    let y = b.fully_connected(features, 7, w2.clone(), b2.clone()).unwrap();
    assert!(b.fuse_relu(y));
    let want = relu(fully_connected(&conv(&Tensor::from_f32(dims, &input), &window(3, 1, 1), 1, 16, &w1, &b1), 7, &w2, &b2));
    let Some(mut network) = plan(b, y, 2) else { return };
    check("flattened fully-connected", &mut network, &input, &want);
}

#[test]
fn wrong_buffer_lengths_are_refused_in_one_line() {
    let mut b = NetworkBuilder::new(1, [2, 4, 4]).unwrap();
    let y = b.convolution(b.input(), window(1, 1, 0), 1, 2, vec![1.0; 4], vec![0.0; 2]).unwrap();
    let Some(mut network) = plan(b, y, 1) else { return };
    let mut out = vec![0.0; 32];
    for err in [network.run(&[0.0; 31], &mut out).unwrap_err(), network.run(&[0.0; 32], &mut out[..31]).unwrap_err()] {
        let text = err.to_string();
        assert!(text.contains("network") && !text.contains('\n'), "{text}");
    }
    network.run(&[1.0; 32], &mut out).unwrap();
    assert_eq!(out, vec![2.0; 32]);
}

/// The Winograd layers this host's plan should hold: some on an AVX2 host (oneDNN's kernels
/// keep `nChw8c` there), none with AVX-512 (`nChw16c`) or without AVX2.
fn expect_winograd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx2") && has!("fma") && !has!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[test]
fn winograd_layers_give_the_direct_answers() {
    // A ResNet-like chain: 1×1 stem, 3×3 at 28² (F(4×4)), a strided 3×3, 3×3 at 14² (F(2×2)),
    // then a 3×3 with a residual sum (direct), two images.
    let dims = [2, 3, 28, 28];
    let input = values(dims.iter().product(), 40);
    let x = Tensor::from_f32(dims, &input);
    let w = |o: usize, c: usize, k: usize, seed| (values(o * c * k * k, seed).iter().map(|v| v * 0.2).collect::<Vec<f32>>(), values(o, seed + 100));
    let [(w0, b0), (w1, b1), (w2, b2), (w3, b3), (w4, b4)] = [w(64, 3, 1, 41), w(64, 64, 3, 42), w(72, 64, 3, 43), w(72, 72, 3, 44), w(72, 72, 3, 45)];
    let mut b = NetworkBuilder::new(2, [3, 28, 28]).unwrap();
    let stem = b.convolution(b.input(), window(1, 1, 0), 1, 64, w0.clone(), b0.clone()).unwrap();
    assert!(b.fuse_relu(stem));
    let f4 = b.convolution(stem, window(3, 1, 1), 1, 64, w1.clone(), b1.clone()).unwrap();
    assert!(b.fuse_relu(f4));
    let down = b.convolution(f4, window(3, 2, 1), 1, 72, w2.clone(), b2.clone()).unwrap();
    let f2 = b.convolution(down, window(3, 1, 1), 1, 72, w3.clone(), b3.clone()).unwrap();
    let last = b.convolution(f2, window(3, 1, 1), 1, 72, w4.clone(), b4.clone()).unwrap();
    let out = b.add(last, down, [true, true]).unwrap();
    assert!(b.fuse_relu(out));

    let r_stem = relu(conv(&x, &window(1, 1, 0), 1, 64, &w0, &b0));
    let r_f4 = relu(conv(&r_stem, &window(3, 1, 1), 1, 64, &w1, &b1));
    let r_down = conv(&r_f4, &window(3, 2, 1), 1, 72, &w2, &b2);
    let r_f2 = conv(&r_down, &window(3, 1, 1), 1, 72, &w3, &b3);
    let want = relu(conv(&r_f2, &window(3, 1, 1), 1, 72, &w4, &b4).plus(&r_down));
    for (allowed, threads) in [(true, 1), (true, 2), (false, 2)] {
        let mut builder = b.clone();
        builder.set_winograd(allowed);
        let Some(mut network) = plan(builder, out, threads) else { return };
        let described = network.describe().to_vec();
        let winograd: Vec<&String> = described.iter().filter(|d| d.contains("winograd")).collect();
        if allowed && expect_winograd() {
            assert_eq!(winograd.len(), 2, "{described:?}");
            assert!(winograd[0].contains("F(4x4,3x3)") && winograd[1].contains("F(2x2,3x3)"), "{described:?}");
        } else {
            assert!(winograd.is_empty(), "{described:?}");
        }
        check(&format!("winograd allowed {allowed}, {threads} threads"), &mut network, &input, &want);
    }
}
