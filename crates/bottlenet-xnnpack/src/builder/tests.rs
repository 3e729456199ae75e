//! Shapes and refusals of the builder (no XNNPACK needed).

#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
use super::*;

fn window(k: usize, s: usize, p: usize) -> Window {
    Window { kernel: [k, k], stride: [s, s], dilation: [1, 1], padding: Padding { top: p, left: p, bottom: p, right: p } }
}

#[test]
fn resnets_stem_shapes_follow_the_onnx_formulas() {
    let mut net = NetworkBuilder::new(Extent::new(224, 224, 3)).unwrap();
    let x = net.input();
    let conv = net.convolution(x, window(7, 2, 3), 1, 64, vec![0.0; 64 * 7 * 7 * 3], vec![0.0; 64], true).unwrap();
    assert_eq!(net.extent(conv).unwrap(), Extent::new(112, 112, 64));
    let pool = net.max_pool(conv, window(3, 2, 1)).unwrap();
    assert_eq!(net.extent(pool).unwrap(), Extent::new(56, 56, 64));
    assert_eq!(net.multiply_adds(), (112 * 112 * 64 * 7 * 7 * 3) as f64);
    // The restoration unit's 3×3/2 transposed convolution, padding 1, output padding 1: 7 → 14.
    let mut small = NetworkBuilder::new(Extent::new(7, 7, 1)).unwrap();
    let up = small.deconvolution(small.input(), window(3, 2, 1), [1, 1], 1, 16, vec![0.0; 16 * 9], vec![0.0; 16], false).unwrap();
    assert_eq!(small.extent(up).unwrap(), Extent::new(14, 14, 16));
    let gap = small.global_average_pool(up).unwrap();
    let fc = small.fully_connected(gap, 10, vec![0.0; 160], vec![0.0; 10], false).unwrap();
    assert_eq!(small.extent(fc).unwrap(), Extent::new(1, 1, 10));
}

#[test]
fn wrong_lengths_and_shapes_are_refused_in_one_line() {
    let mut net = NetworkBuilder::new(Extent::new(8, 8, 4)).unwrap();
    let x = net.input();
    let errors = [
        net.convolution(x, window(3, 1, 1), 1, 8, vec![0.0; 10], vec![0.0; 8], false).unwrap_err(),
        net.convolution(x, window(3, 1, 1), 3, 8, vec![0.0; 8 * 9], vec![0.0; 8], false).unwrap_err(),
        net.convolution(x, window(11, 1, 0), 1, 8, vec![0.0; 8 * 121 * 4], vec![0.0; 8], false).unwrap_err(),
        net.fully_connected(x, 2, vec![0.0; 512], vec![0.0; 2], false).unwrap_err(),
        net.deconvolution(x, window(3, 2, 1), [2, 0], 1, 4, vec![0.0; 4 * 9 * 4], vec![0.0; 4], false).unwrap_err(),
        net.max_pool(x, window(1, 1, 0)).unwrap_err(),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.is_empty() && !text.contains('\n'), "{text}");
    }
    let other = NetworkBuilder::new(Extent::new(2, 2, 2)).unwrap();
    let a = net.relu(x).unwrap();
    let _ = other;
    let b = net.global_average_pool(a).unwrap();
    assert!(net.add(a, b, false).unwrap_err().to_string().contains("extents differ"));
}

#[test]
fn a_relu_folds_into_the_layer_before_it_but_not_into_the_input() {
    let mut net = NetworkBuilder::new(Extent::new(4, 4, 2)).unwrap();
    assert!(!net.fuse_relu(net.input()));
    let pool = net.max_pool(net.input(), window(2, 2, 0)).unwrap();
    assert!(net.fuse_relu(pool));
    assert!(matches!(net.layers[0], Layer::MaxPool { relu: true, .. }));
}
