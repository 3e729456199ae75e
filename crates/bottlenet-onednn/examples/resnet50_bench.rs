//! Times torchvision's ResNet-50 (batch 1, 3×224×224, random weights, BatchNorm taken as folded)
//! planned as one oneDNN [`Network`], with and without the Winograd layers, the two plans taking
//! turns run by run in one process so that a noisy machine slows both alike.
//!
//! ```text
//! cargo run --release -p bottlenet-onednn --example resnet50_bench -- [--threads N] [--runs N]
//! ```
//!
//! Prints each plan's median and fastest run (ms) and their ratio, and checks that both plans
//! give the same logits within 1e-4 of their scale.

use bottlenet_onednn::{Network, NetworkBuilder, ValueId, Window};
use std::time::Instant;

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

fn window(k: usize, s: usize, p: usize) -> Window {
    Window { kernel: [k, k], stride: [s, s], dilation: [1, 1], padding: [p; 4] }
}

/// A convolution with He-scaled random weights, ReLU fused where asked.
fn conv(b: &mut NetworkBuilder, x: ValueId, k: usize, s: usize, out: usize, relu: bool, seed: &mut u64) -> ValueId {
    let c = b.dims(x).expect("value")[1];
    *seed += 1;
    let scale = (2.0 / (c * k * k) as f32).sqrt() * 1.7;
    let y = b.convolution(x, window(k, s, k / 2), 1, out, values(out * c * k * k, *seed, scale), values(out, *seed + 1000, 0.1)).expect("convolution");
    if relu {
        assert!(b.fuse_relu(y));
    }
    y
}

fn resnet50() -> (NetworkBuilder, ValueId) {
    let mut seed = 0;
    let mut b = NetworkBuilder::new(1, [3, 224, 224]).expect("input");
    let input = b.input();
    let stem = conv(&mut b, input, 7, 2, 64, true, &mut seed);
    let mut x = b.max_pool(stem, window(3, 2, 1)).expect("max pool");
    for (stage, (blocks, width)) in [(3, 64), (4, 128), (6, 256), (3, 512)].into_iter().enumerate() {
        for block in 0..blocks {
            let stride = if block == 0 && stage > 0 { 2 } else { 1 };
            let a = conv(&mut b, x, 1, 1, width, true, &mut seed);
            let m = conv(&mut b, a, 3, stride, width, true, &mut seed);
            let shortcut = if block == 0 { conv(&mut b, x, 1, stride, width * 4, false, &mut seed) } else { x };
            let last = conv(&mut b, m, 1, 1, width * 4, false, &mut seed);
            let sum = b.add(last, shortcut, [true, true]).expect("residual");
            assert!(b.fuse_relu(sum));
            x = sum;
        }
    }
    let pooled = b.global_average_pool(x).expect("pool");
    let logits = b.fully_connected(pooled, 1000, values(1000 * 2048, 99, 0.02), values(1000, 98, 0.1)).expect("fc");
    (b, logits)
}

fn plan(winograd: bool, threads: usize) -> Network {
    let (mut b, out) = resnet50();
    b.set_winograd(winograd);
    b.build(out, threads).expect("plan")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().expect("a number"));
    let (threads, runs) = (flag("--threads", 2), flag("--runs", 30));
    let mut plans = [("direct", plan(false, threads)), ("winograd", plan(true, threads))];
    let winograd_layers = plans[1].1.describe().iter().filter(|d| d.contains("winograd")).count();
    println!("ResNet-50 batch 1, {threads} threads, {runs} runs each, alternating; the winograd plan has {winograd_layers} Winograd layers");
    let input = values(3 * 224 * 224, 7, 1.0);
    let mut outputs = [vec![0f32; 1000], vec![0f32; 1000]];
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..runs + 3 {
        for (i, (_, network)) in plans.iter_mut().enumerate() {
            let start = Instant::now();
            network.run(&input, &mut outputs[i]).expect("run");
            if round >= 3 {
                times[i].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let scale = outputs[0].iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = outputs[0].iter().zip(&outputs[1]).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let stats: Vec<[f64; 2]> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            [t[t.len() / 2], t[0]]
        })
        .collect();
    for ((name, _), [median, fastest]) in plans.iter().zip(&stats) {
        println!("{name:>9}: median {median:7.2} ms, fastest {fastest:7.2} ms");
    }
    println!("winograd / direct: median {:.3}, fastest {:.3}; logits differ by {diff:.2e} at scale {scale:.2e}", stats[1][0] / stats[0][0], stats[1][1] / stats[0][1]);
    assert!(diff <= 1e-4 * scale.max(1.0), "the two plans disagree");
}
