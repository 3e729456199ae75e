//! All three primitives against a direct naive definition (f64
//! accumulation), for every format/algorithm option.

use bottlenet_onednn::{Algorithm, Conv2dKernels, Conv2dShape, Error, Format};

/// Kernels for `shape`, or `None` (after checking the refusal) when oneDNN
/// is not linked. With `CI` set, not being linked is a failure.
fn kernels(shape: Conv2dShape, format: Format, algorithm: Algorithm) -> Option<Conv2dKernels> {
    match Conv2dKernels::with_options(shape, format, algorithm) {
        Ok(k) => {
            assert!(bottlenet_onednn::linked());
            Some(k)
        }
        Err(Error::NotLinked) => {
            assert!(!bottlenet_onednn::linked());
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but bottlenet-onednn was built without oneDNN: install libdnnl-dev"
            );
            eprintln!("bottlenet-onednn: oneDNN not linked; checked that constructing returns Error::NotLinked");
            None
        }
        Err(e) => panic!("constructing {shape:?} failed: {e}"),
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

/// Calls `f(n, o, oh, ow, c, ih, iw, widx)` for every in-bounds tap of the
/// convolution, with `c` the absolute input channel and `widx` the weight
/// index. This is the definition every reference below is built on.
fn for_each_tap(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize, usize)) {
    let [oh_n, ow_n] = s.output_hw().expect("valid shape");
    let cg = s.in_channels / s.groups;
    let og = s.out_channels / s.groups;
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            let g = o / og;
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    for ci in 0..cg {
                        let c = g * cg + ci;
                        for kh in 0..s.kernel[0] {
                            let ih = (oh * s.stride[0] + kh * s.dilation[0]) as isize - s.padding[0] as isize;
                            if ih < 0 || ih >= s.in_height as isize {
                                continue;
                            }
                            for kw in 0..s.kernel[1] {
                                let iw = (ow * s.stride[1] + kw * s.dilation[1]) as isize - s.padding[1] as isize;
                                if iw < 0 || iw >= s.in_width as isize {
                                    continue;
                                }
                                let widx = ((o * cg + ci) * s.kernel[0] + kh) * s.kernel[1] + kw;
                                f(n, o, oh, ow, c, ih as usize, iw as usize, widx);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn in_idx(s: &Conv2dShape, n: usize, c: usize, h: usize, w: usize) -> usize {
    ((n * s.in_channels + c) * s.in_height + h) * s.in_width + w
}

fn out_idx(s: &Conv2dShape, n: usize, o: usize, h: usize, w: usize) -> usize {
    let [oh, ow] = s.output_hw().expect("valid shape");
    ((n * s.out_channels + o) * oh + h) * ow + w
}

fn ref_forward(s: &Conv2dShape, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
    let [oh_n, ow_n] = s.output_hw().expect("valid shape");
    let mut y = vec![0f64; s.output_len()];
    if let Some(b) = b {
        for n in 0..s.batch {
            for o in 0..s.out_channels {
                for i in 0..oh_n * ow_n {
                    y[(n * s.out_channels + o) * oh_n * ow_n + i] = b[o] as f64;
                }
            }
        }
    }
    for_each_tap(s, |n, o, oh, ow, c, ih, iw, widx| {
        y[out_idx(s, n, o, oh, ow)] += x[in_idx(s, n, c, ih, iw)] as f64 * w[widx] as f64;
    });
    y
}

fn ref_backward_data(s: &Conv2dShape, dy: &[f32], w: &[f32]) -> Vec<f64> {
    let mut dx = vec![0f64; s.input_len()];
    for_each_tap(s, |n, o, oh, ow, c, ih, iw, widx| {
        dx[in_idx(s, n, c, ih, iw)] += dy[out_idx(s, n, o, oh, ow)] as f64 * w[widx] as f64;
    });
    dx
}

fn ref_backward_weights(s: &Conv2dShape, x: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let mut dw = vec![0f64; s.weight_len()];
    for_each_tap(s, |n, o, oh, ow, c, ih, iw, widx| {
        dw[widx] += dy[out_idx(s, n, o, oh, ow)] as f64 * x[in_idx(s, n, c, ih, iw)] as f64;
    });
    let [oh_n, ow_n] = s.output_hw().expect("valid shape");
    let mut db = vec![0f64; s.out_channels];
    for n in 0..s.batch {
        for (o, acc) in db.iter_mut().enumerate() {
            for i in 0..oh_n * ow_n {
                *acc += dy[(n * s.out_channels + o) * oh_n * ow_n + i] as f64;
            }
        }
    }
    (dw, db)
}

/// Max |got - want| relative to max(1e-3, max |want|) must be within 1e-4.
fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0f64, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (*g as f64 - w).abs();
        if e > worst || e.is_nan() {
            worst = e;
            at = i;
        }
    }
    let rel = worst / scale;
    assert!(rel <= 1e-4, "{what}: relative error {rel:e} at {at} (got {}, want {}, scale {scale})", got[at], want[at]);
}

fn options() -> [(Format, Algorithm); 4] {
    [
        (Format::Any, Algorithm::Direct),
        (Format::Plain, Algorithm::Direct),
        (Format::Tuned, Algorithm::Direct),
        (Format::Any, Algorithm::Auto),
    ]
}

fn check_case(name: &str, shape: Conv2dShape) {
    shape.validate().expect("test shape is valid");
    let x = values(shape.input_len(), 1);
    let w = values(shape.weight_len(), 2);
    let b = values(shape.bias_len(), 3);
    let dy = values(shape.output_len(), 4);
    let want_y_bias = ref_forward(&shape, &x, &w, Some(&b));
    let want_y = ref_forward(&shape, &x, &w, None);
    let want_dx = ref_backward_data(&shape, &dy, &w);
    let (want_dw, want_db) = ref_backward_weights(&shape, &x, &dy);

    for (format, algorithm) in options() {
        let Some(mut k) = kernels(shape, format, algorithm) else { return };
        let tag = format!("{name} {format:?}/{algorithm:?}");
        // Poisoned outputs: everything must be overwritten.
        let mut y = vec![f32::NAN; shape.output_len()];
        k.forward(&x, &w, Some(&b), &mut y).expect("forward+bias");
        assert_close(&format!("{tag} forward+bias"), &y, &want_y_bias);
        let mut y = vec![f32::NAN; shape.output_len()];
        k.forward(&x, &w, None, &mut y).expect("forward");
        assert_close(&format!("{tag} forward"), &y, &want_y);

        let mut dx = vec![f32::NAN; shape.input_len()];
        k.backward_data(&dy, &w, &mut dx).expect("backward_data");
        assert_close(&format!("{tag} backward-data"), &dx, &want_dx);

        let mut dw = vec![f32::NAN; shape.weight_len()];
        let mut db = vec![f32::NAN; shape.bias_len()];
        k.backward_weights(&x, &dy, &mut dw, Some(&mut db)).expect("backward_weights+bias");
        assert_close(&format!("{tag} backward-weights"), &dw, &want_dw);
        assert_close(&format!("{tag} backward-bias"), &db, &want_db);
        let mut dw = vec![f32::NAN; shape.weight_len()];
        k.backward_weights(&x, &dy, &mut dw, None).expect("backward_weights");
        assert_close(&format!("{tag} backward-weights (no bias)"), &dw, &want_dw);
    }
}

#[test]
fn k3_s1_p1() {
    check_case("3x3 s1 p1 b1", Conv2dShape::new(1, 4, 8, [9, 9], 3, 1, 1));
    check_case("3x3 s1 p1 b8", Conv2dShape::new(8, 16, 16, [12, 12], 3, 1, 1));
}

#[test]
fn k3_s2_p1() {
    check_case("3x3 s2 p1", Conv2dShape::new(8, 16, 32, [14, 14], 3, 2, 1));
    check_case("3x3 s2 p1 odd", Conv2dShape::new(1, 5, 7, [11, 13], 3, 2, 1));
}

#[test]
fn k1_s2() {
    check_case("1x1 s2", Conv2dShape::new(8, 16, 32, [14, 14], 1, 2, 0));
    check_case("1x1 s2 b1", Conv2dShape::new(1, 3, 5, [7, 7], 1, 2, 0));
}

#[test]
fn k7_s2_p3_rgb() {
    check_case("7x7 s2 p3", Conv2dShape::new(2, 3, 16, [24, 24], 7, 2, 3));
}

#[test]
fn stem_one_channel() {
    check_case("stem 1->16", Conv2dShape::new(8, 1, 16, [28, 28], 3, 1, 1));
}

#[test]
fn groups() {
    check_case("groups 2", Conv2dShape { groups: 2, ..Conv2dShape::new(2, 8, 16, [10, 10], 3, 1, 1) });
    check_case("depthwise", Conv2dShape { groups: 16, ..Conv2dShape::new(2, 16, 16, [9, 9], 3, 2, 1) });
}

#[test]
fn dilation() {
    check_case("dilation 2", Conv2dShape { dilation: [2, 2], ..Conv2dShape::new(2, 4, 8, [11, 11], 3, 1, 2) });
    check_case("dilation 2x3", Conv2dShape { dilation: [2, 3], ..Conv2dShape::new(1, 4, 8, [12, 13], 3, 1, 0) });
}

#[test]
fn asymmetric_padding() {
    let s = Conv2dShape {
        kernel: [3, 2],
        stride: [2, 1],
        padding: [1, 0, 2, 1],
        ..Conv2dShape::new(8, 4, 8, [9, 10], 3, 1, 0)
    };
    check_case("asymmetric", s);
}

#[test]
fn reuse_across_calls() {
    let s = Conv2dShape::new(4, 8, 8, [8, 8], 3, 1, 1);
    let Some(mut k) = kernels(s, Format::Any, Algorithm::Direct) else { return };
    let w = values(s.weight_len(), 7);
    for seed in 10..14 {
        let x = values(s.input_len(), seed);
        let mut y = vec![0.0; s.output_len()];
        k.forward(&x, &w, None, &mut y).expect("forward");
        assert_close("reuse", &y, &ref_forward(&s, &x, &w, None));
    }
    // Moving to another thread and running there works (Send).
    let handle = std::thread::spawn(move || {
        let x = values(s.input_len(), 99);
        let mut y = vec![0.0; s.output_len()];
        k.forward(&x, &w, None, &mut y).expect("forward on another thread");
        assert_close("other thread", &y, &ref_forward(&s, &x, &w, None));
    });
    handle.join().expect("thread");
}

#[test]
fn refuses_bad_lengths() {
    let s = Conv2dShape::new(2, 4, 8, [6, 6], 3, 1, 1);
    let Some(mut k) = kernels(s, Format::Any, Algorithm::Direct) else { return };
    let x = vec![0.0; s.input_len()];
    let w = vec![0.0; s.weight_len()];
    let mut y = vec![0.0; s.output_len()];
    let shape_err = |r: bottlenet_onednn::Result<()>| match r {
        Err(Error::Shape(m)) => m,
        other => panic!("expected Error::Shape, got {other:?}"),
    };
    assert_eq!(shape_err(k.forward(&x[1..], &w, None, &mut y)), "input has 287 elements, expected 288");
    assert!(shape_err(k.forward(&x, &w[1..], None, &mut y)).starts_with("weight has"));
    assert!(shape_err(k.forward(&x, &w, Some(&[0.0; 3]), &mut y)).starts_with("bias has 3"));
    assert!(shape_err(k.forward(&x, &w, None, &mut y[1..])).starts_with("output has"));
    let mut dx = vec![0.0; s.input_len()];
    assert!(shape_err(k.backward_data(&y[1..], &w, &mut dx)).starts_with("grad_output has"));
    assert!(shape_err(k.backward_data(&y, &w, &mut dx[1..])).starts_with("grad_input has"));
    let mut dw = vec![0.0; s.weight_len()];
    assert!(shape_err(k.backward_weights(&x, &y, &mut dw[1..], None)).starts_with("grad_weight has"));
    assert!(shape_err(k.backward_weights(&x, &y, &mut dw, Some(&mut [0.0; 9]))).starts_with("grad_bias has 9"));
}

#[test]
fn refuses_bad_shape_or_not_linked() {
    let bad = Conv2dShape { groups: 3, ..Conv2dShape::new(1, 4, 8, [6, 6], 3, 1, 1) };
    match Conv2dKernels::new(bad) {
        Err(Error::Shape(m)) => assert!(m.contains("not divisible by groups")),
        Err(Error::NotLinked) => assert!(!bottlenet_onednn::linked()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
