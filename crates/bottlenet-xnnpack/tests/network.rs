//! Every layer XNNPACK runs for us, against a direct NHWC definition in this file, on seeded
//! values: within 1e-4 of the reference's scale, across batch sizes and with fused ReLUs.
//!
//! Needs Debian's `libxnnpack-dev` and `libpthreadpool-dev` at build time (`.ci/run` installs
//! them). Under CI a build without them fails here; elsewhere each test checks the one-line
//! refusal instead of the numbers, and says so.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use bottlenet_xnnpack::{Error, Extent, NetworkBuilder, Padding, ValueId, Window, linked};

/// Seeded values in ±scale/2 (a linear congruential generator).
fn values(n: usize, seed: &mut u64, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect()
}

fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Builds and runs `builder` on `batch` samples of `input`; `None` (after checking the refusal)
/// where the build has no XNNPACK outside CI.
fn run(builder: NetworkBuilder, output: ValueId, threads: usize, batch: usize, input: &[f32]) -> Option<Vec<f32>> {
    match builder.build(output, threads) {
        Ok(mut network) => Some(network.run(batch, input).expect("runs").to_vec()),
        Err(Error::NotLinked) if !under_ci() => {
            let text = Error::NotLinked.to_string();
            assert!(text.contains("libxnnpack-dev") && !text.contains('\n'), "{text}");
            eprintln!("checked the refusal only: this build has no XNNPACK (install libxnnpack-dev libpthreadpool-dev)");
            None
        }
        Err(e) => panic!("building the network failed: {e}"),
    }
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-4 * scale, "largest difference {worst} against a scale of {scale}");
}

/// `x[n][y][x][c]` of an NHWC batch.
fn at(x: &[f32], e: Extent, n: usize, y: usize, col: usize, c: usize) -> f32 {
    x[((n * e.height + y) * e.width + col) * e.channels + c]
}

/// The direct definition of a grouped, dilated, padded 2-D convolution on NHWC, OHWI kernel.
#[allow(clippy::too_many_arguments)]
fn reference_convolution(x: &[f32], batch: usize, e: Extent, w: Window, groups: usize, c_out: usize, kernel: &[f32], bias: &[f32]) -> (Extent, Vec<f32>) {
    let side = |input: usize, k: usize, s: usize, d: usize, before: usize, after: usize| (input + before + after - d * (k - 1) - 1) / s + 1;
    let out = Extent::new(
        side(e.height, w.kernel[0], w.stride[0], w.dilation[0], w.padding.top, w.padding.bottom),
        side(e.width, w.kernel[1], w.stride[1], w.dilation[1], w.padding.left, w.padding.right),
        c_out,
    );
    let (gi, go) = (e.channels / groups, c_out / groups);
    let mut y = Vec::with_capacity(batch * out.len());
    for n in 0..batch {
        for oy in 0..out.height {
            for ox in 0..out.width {
                for o in 0..c_out {
                    let g = o / go;
                    let mut sum = bias[o];
                    for ky in 0..w.kernel[0] {
                        for kx in 0..w.kernel[1] {
                            let iy = (oy * w.stride[0] + ky * w.dilation[0]) as isize - w.padding.top as isize;
                            let ix = (ox * w.stride[1] + kx * w.dilation[1]) as isize - w.padding.left as isize;
                            if iy < 0 || ix < 0 || iy >= e.height as isize || ix >= e.width as isize {
                                continue;
                            }
                            for i in 0..gi {
                                let k = kernel[((o * w.kernel[0] + ky) * w.kernel[1] + kx) * gi + i];
                                sum += k * at(x, e, n, iy as usize, ix as usize, g * gi + i);
                            }
                        }
                    }
                    y.push(sum);
                }
            }
        }
    }
    (out, y)
}

fn relu(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|x| x.max(0.0)).collect()
}

#[test]
fn a_linked_build_is_required_under_ci() {
    assert!(linked() || !under_ci(), "CI is set but this build found no XNNPACK: install libxnnpack-dev and libpthreadpool-dev before building");
}

#[test]
fn convolutions_match_the_definition_with_groups_strides_dilation_padding_and_relu() {
    let mut seed = 11;
    let e = Extent::new(9, 7, 6);
    let cases = [
        (Window { kernel: [3, 3], stride: [1, 1], dilation: [1, 1], padding: Padding { top: 1, left: 1, bottom: 1, right: 1 } }, 1, 8, false),
        (Window { kernel: [3, 2], stride: [2, 1], dilation: [1, 2], padding: Padding { top: 1, left: 0, bottom: 2, right: 1 } }, 2, 4, true),
        (Window { kernel: [1, 1], stride: [2, 2], dilation: [1, 1], padding: Padding::default() }, 1, 5, false),
        (Window { kernel: [7, 7], stride: [2, 2], dilation: [1, 1], padding: Padding { top: 3, left: 3, bottom: 3, right: 3 } }, 1, 16, true),
    ];
    for (window, groups, c_out, fused) in cases {
        for (batch, threads) in [(1, 1), (3, 2)] {
            let x = values(batch * e.len(), &mut seed, 2.0);
            let kernel = values(c_out * window.kernel[0] * window.kernel[1] * e.channels / groups, &mut seed, 1.0);
            let bias = values(c_out, &mut seed, 1.0);
            let mut net = NetworkBuilder::new(e).unwrap();
            let y = net.convolution(net.input(), window, groups, c_out, kernel.clone(), bias.clone(), fused).unwrap();
            let (out, mut want) = reference_convolution(&x, batch, e, window, groups, c_out, &kernel, &bias);
            assert_eq!(net.extent(y).unwrap(), out);
            if fused {
                want = relu(want);
            }
            if let Some(got) = run(net, y, threads, batch, &x) {
                assert_close(&got, &want);
            }
        }
    }
}

#[test]
fn a_transposed_convolution_matches_its_definition_as_scattered_products() {
    // ONNX ConvTranspose: out[(iy·s + ky·d − pad_top)][…] += x[iy][ix][i] · W[o][ky][kx][i],
    // output padding added at the bottom and right.
    let mut seed = 5;
    let (e, c_out, s, k, pad, adjust) = (Extent::new(4, 5, 3), 4, 2usize, 3usize, 1usize, 1usize);
    let window = Window { kernel: [k, k], stride: [s, s], dilation: [1, 1], padding: Padding { top: pad, left: pad, bottom: pad, right: pad } };
    let x = values(2 * e.len(), &mut seed, 2.0);
    let kernel = values(c_out * k * k * e.channels, &mut seed, 1.0);
    let bias = values(c_out, &mut seed, 1.0);
    let (oh, ow) = (s * (e.height - 1) + adjust + k - 2 * pad, s * (e.width - 1) + adjust + k - 2 * pad);
    let mut want = vec![0.0f32; 2 * oh * ow * c_out];
    for n in 0..2 {
        for (i, value) in want[n * oh * ow * c_out..(n + 1) * oh * ow * c_out].iter_mut().enumerate() {
            *value = bias[i % c_out];
        }
        for iy in 0..e.height {
            for ix in 0..e.width {
                for ky in 0..k {
                    for kx in 0..k {
                        let (oy, ox) = ((iy * s + ky) as isize - pad as isize, (ix * s + kx) as isize - pad as isize);
                        if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                            continue;
                        }
                        for o in 0..c_out {
                            let mut sum = 0.0;
                            for i in 0..e.channels {
                                sum += at(&x, e, n, iy, ix, i) * kernel[((o * k + ky) * k + kx) * e.channels + i];
                            }
                            want[((n * oh + oy as usize) * ow + ox as usize) * c_out + o] += sum;
                        }
                    }
                }
            }
        }
    }
    let mut net = NetworkBuilder::new(e).unwrap();
    let y = net.deconvolution(net.input(), window, [adjust, adjust], 1, c_out, kernel, bias, false).unwrap();
    assert_eq!(net.extent(y).unwrap(), Extent::new(oh, ow, c_out));
    if let Some(got) = run(net, y, 2, 2, &x) {
        assert_close(&got, &want);
    }
}

/// Max-pool 3×3/2 padded 1 (−∞ padding) of an NHWC batch of 6×6.
fn reference_pool(x: &[f32], batch: usize, e: Extent) -> Vec<f32> {
    let mut pooled = Vec::new();
    for n in 0..batch {
        for oy in 0..3 {
            for ox in 0..3 {
                for c in 0..e.channels {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                            if iy >= 0 && ix >= 0 && iy < 6 && ix < 6 {
                                m = m.max(at(x, e, n, iy as usize, ix as usize, c));
                            }
                        }
                    }
                    pooled.push(m);
                }
            }
        }
    }
    pooled
}

#[test]
fn pooling_adds_and_the_classifier_match_their_definitions() {
    let mut seed = 3;
    let (e, batch, classes) = (Extent::new(6, 6, 4), 2, 3);
    let x = values(batch * e.len(), &mut seed, 2.0);
    let fc_kernel = values(e.channels * classes, &mut seed, 1.0);
    let fc_bias = values(classes, &mut seed, 1.0);
    // pool → relu(pool + pool) → global mean → x·W + b, W laid out [inputs, outputs].
    let doubled = relu(reference_pool(&x, batch, e).iter().map(|a| a + a).collect());
    let mut want = Vec::new();
    for n in 0..batch {
        let mean: Vec<f32> = (0..e.channels).map(|c| (0..9).map(|p| doubled[(n * 9 + p) * e.channels + c]).sum::<f32>() / 9.0).collect();
        for o in 0..classes {
            want.push(fc_bias[o] + (0..e.channels).map(|i| mean[i] * fc_kernel[i * classes + o]).sum::<f32>());
        }
    }
    let window = Window { kernel: [3, 3], stride: [2, 2], dilation: [1, 1], padding: Padding { top: 1, left: 1, bottom: 1, right: 1 } };
    let mut net = NetworkBuilder::new(e).unwrap();
    let pool = net.max_pool(net.input(), window).unwrap();
    assert_eq!(net.extent(pool).unwrap(), Extent::new(3, 3, e.channels));
    let twice = net.add(pool, pool, true).unwrap();
    let gap = net.global_average_pool(twice).unwrap();
    let logits = net.fully_connected(gap, classes, fc_kernel, fc_bias, false).unwrap();
    if let Some(got) = run(net, logits, 1, batch, &x) {
        assert_close(&got, &want);
    }
}

#[test]
fn a_residual_block_gives_each_sample_the_same_answer_at_any_batch_size() {
    // conv+relu → conv → (+ input) relu → relu: values die and their buffers are reused, and
    // the batch changes between runs (1, 4, 1), which sets every operator up again.
    let mut seed = 9;
    let e = Extent::new(5, 5, 8);
    let same = Window { kernel: [3, 3], stride: [1, 1], dilation: [1, 1], padding: Padding { top: 1, left: 1, bottom: 1, right: 1 } };
    let (k1, b1, k2, b2) = (values(8 * 9 * 8, &mut seed, 0.5), values(8, &mut seed, 0.5), values(8 * 9 * 8, &mut seed, 0.5), values(8, &mut seed, 0.5));
    let mut net = NetworkBuilder::new(e).unwrap();
    let a = net.convolution(net.input(), same, 1, 8, k1.clone(), b1.clone(), true).unwrap();
    let b = net.convolution(a, same, 1, 8, k2.clone(), b2.clone(), false).unwrap();
    let sum = net.add(b, net.input(), true).unwrap();
    let out = net.relu(sum).unwrap();
    let reference = |x: &[f32]| {
        let (_, a) = reference_convolution(x, 1, e, same, 1, 8, &k1, &b1);
        let (_, b) = reference_convolution(&relu(a), 1, e, same, 1, 8, &k2, &b2);
        relu(b.iter().zip(x).map(|(p, q)| p + q).collect())
    };
    let samples: Vec<Vec<f32>> = (0..4).map(|_| values(e.len(), &mut seed, 2.0)).collect();
    let network = match net.build(out, 2) {
        Ok(network) => Some(network),
        Err(Error::NotLinked) if !under_ci() => None,
        Err(other) => panic!("{other}"),
    };
    let Some(mut network) = network else {
        eprintln!("checked the refusal only: this build has no XNNPACK");
        return;
    };
    assert_close(network.run(1, &samples[0]).unwrap(), &reference(&samples[0]));
    let all: Vec<f32> = samples.concat();
    let batched = network.run(4, &all).unwrap().to_vec();
    for (n, sample) in samples.iter().enumerate() {
        assert_close(&batched[n * e.len()..(n + 1) * e.len()], &reference(sample));
    }
    assert_close(network.run(1, &samples[3]).unwrap(), &reference(&samples[3]));
    let refused = network.run(2, &samples[0]).unwrap_err().to_string();
    assert!(refused.contains("got 200 values for 2") && !refused.contains('\n'), "{refused}");
}
