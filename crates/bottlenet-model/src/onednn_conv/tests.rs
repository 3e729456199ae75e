//! oneDNN's convolutions against burn's own on flex: outputs, and under autodiff the input's,
//! weight's and bias's gradients, within 1e-4 of scale, for the layer kinds the backbones and
//! the bottleneck use. Under CI a build without oneDNN fails here.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};

use super::*;

fn require_onednn() -> bool {
    if bottlenet_onednn::linked() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "oneDNN is not linked in this build: install libdnnl-dev (CI must)");
    eprintln!("oneDNN not linked: checking the refusal only");
    assert!(ConvKernels::parse("onednn").unwrap_err().contains("libdnnl-dev"));
    assert_eq!(ConvKernels::default_for_build(), ConvKernels::Burn);
    false
}

/// max |a - b| over max |b|, at least 1.
fn relative_gap(a: Tensor<4>, b: Tensor<4>) -> f32 {
    let (a, b) = (a.into_data().try_into_vec_as::<f32>().expect("f32"), b.into_data().try_into_vec_as::<f32>().expect("f32"));
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

struct Case {
    name: &'static str,
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: PaddingConfig2d,
    groups: usize,
    bias: bool,
    batch: usize,
    hw: [usize; 2],
}

fn cases() -> Vec<Case> {
    let p = |n| PaddingConfig2d::Explicit(n, n, n, n);
    vec![
        Case { name: "stem 3x3", channels: [1, 16], kernel: 3, stride: 1, padding: p(1), groups: 1, bias: false, batch: 4, hw: [28, 28] },
        Case { name: "3x3 stride 2", channels: [16, 32], kernel: 3, stride: 2, padding: p(1), groups: 1, bias: false, batch: 3, hw: [14, 14] },
        Case { name: "1x1 stride 2 shortcut", channels: [16, 32], kernel: 1, stride: 2, padding: PaddingConfig2d::Valid, groups: 1, bias: false, batch: 2, hw: [14, 14] },
        Case { name: "7x7 stride 2 RGB stem", channels: [3, 8], kernel: 7, stride: 2, padding: p(3), groups: 1, bias: false, batch: 1, hw: [32, 32] },
        Case { name: "bottleneck channel conv with bias", channels: [32, 4], kernel: 1, stride: 1, padding: PaddingConfig2d::Valid, groups: 1, bias: true, batch: 5, hw: [7, 7] },
        Case { name: "asymmetric padding, groups 2, bias", channels: [4, 6], kernel: 3, stride: 1, padding: PaddingConfig2d::Explicit(1, 0, 2, 1), groups: 2, bias: true, batch: 2, hw: [9, 8] },
    ]
}

fn layer(case: &Case, device: &Device) -> Conv2d {
    Conv2dConfig::new(case.channels, [case.kernel, case.kernel])
        .with_stride([case.stride, case.stride])
        .with_padding(case.padding.clone())
        .with_groups(case.groups)
        .with_bias(case.bias)
        .init(device)
}

#[test]
fn forward_matches_burn_on_flex() {
    if !require_onednn() {
        return;
    }
    let device = Device::flex();
    for case in cases() {
        let conv = layer(&case, &device);
        let x = Tensor::<4>::random([case.batch, case.channels[0], case.hw[0], case.hw[1]], Distribution::Normal(0.0, 1.0), &device);
        let before = onednn_passes();
        let fast = conv2d_forward(&conv, x.clone());
        assert!(onednn_passes() > before, "{}: the layer did not run on oneDNN", case.name);
        let gap = relative_gap(fast, conv.forward(x));
        assert!(gap < 1e-4, "{}: forward differs by {gap:e} of scale", case.name);
    }
}

#[test]
fn gradients_match_burn_under_autodiff() {
    if !require_onednn() {
        return;
    }
    let device = Device::flex().autodiff();
    for case in cases() {
        let conv = layer(&case, &device);
        let x = Tensor::<4>::random([case.batch, case.channels[0], case.hw[0], case.hw[1]], Distribution::Normal(0.0, 1.0), &device);
        // A loss whose gradient differs at every output element.
        let run = |fast: bool| {
            let x = x.clone().detach().require_grad();
            let y = if fast { conv2d_forward(&conv, x.clone()) } else { conv.forward(x.clone()) };
            let weights = Tensor::<4>::ones(y.dims(), &device).cumsum(3) / 7.0;
            let grads = (y.clone() * weights).sum().backward();
            let grad_x = x.grad(&grads).expect("input gradient");
            let grad_w = conv.weight.val().grad(&grads).expect("weight gradient");
            let grad_b = conv.bias.as_ref().map(|b| b.val().grad(&grads).expect("bias gradient"));
            (y, grad_x, grad_w, grad_b)
        };
        let before = onednn_passes();
        let (y, gx, gw, gb) = run(true);
        // The forward pass, the input gradient and the weight (and bias) gradient.
        assert!(onednn_passes() >= before + 3, "{}: the step did not run its passes on oneDNN", case.name);
        let (y_ref, gx_ref, gw_ref, gb_ref) = run(false);
        for (what, gap) in [("output", relative_gap(y, y_ref)), ("input gradient", relative_gap(gx, gx_ref)), ("weight gradient", relative_gap(gw, gw_ref))] {
            assert!(gap < 1e-4, "{}: {what} differs by {gap:e} of scale", case.name);
        }
        if let (Some(gb), Some(gb_ref)) = (gb, gb_ref) {
            let gap = relative_gap(gb.reshape([1, 1, 1, -1]), gb_ref.reshape([1, 1, 1, -1]));
            assert!(gap < 1e-4, "{}: bias gradient differs by {gap:e} of scale", case.name);
        }
    }
}

#[test]
fn kernels_parse_and_refuse_in_one_line() {
    assert_eq!(ConvKernels::parse("burn"), Ok(ConvKernels::Burn));
    let err = ConvKernels::parse("mkl").unwrap_err();
    assert!(err.contains("onednn or burn") && !err.contains('\n'), "{err}");
    if bottlenet_onednn::linked() {
        assert_eq!(ConvKernels::parse("oneDNN"), Ok(ConvKernels::OneDnn));
    }
}
