//! Times forward, backward-data and backward-weights for the compact
//! Fashion-MNIST training backbone (batch 64, 28x28 grayscale).
//!
//! ```text
//! OMP_NUM_THREADS=2 cargo run --release --example conv_bench -- [--format any|plain|tuned] [--alg direct|auto] [--all] [--runs N] [--repeat K] [--stat median|min] [--batch N] [--verbose]
//! ```
//!
//! Each cell is the median of `--runs` timed calls after warm-up (the best
//! of `--repeat` such medians, default 1; `--stat min` takes the fastest
//! call instead, for a machine shared with other jobs); GFLOP/s
//! counts 2 * multiply-adds of the forward convolution for every pass.
//! `--all` prints one table per option set (any/direct, plain/direct,
//! tuned/direct, any/auto). `/work/onednn-wip/torch_conv_bench.py` times the same with torch.

use bottlenet_onednn::{Algorithm, Conv2dKernels, Conv2dShape, Format};
use std::time::Instant;

fn layers(batch: usize) -> Vec<(&'static str, Conv2dShape)> {
    let c = |name, cin, cout, hw, k, s, p| (name, Conv2dShape::new(batch, cin, cout, [hw, hw], k, s, p));
    vec![
        c("stem 1->16 3x3 s1 28", 1, 16, 28, 3, 1, 1),
        c("16->16 3x3 s1 28", 16, 16, 28, 3, 1, 1),
        c("16->32 3x3 s2 28", 16, 32, 28, 3, 2, 1),
        c("16->32 1x1 s2 28", 16, 32, 28, 1, 2, 0),
        c("32->32 3x3 s1 14", 32, 32, 14, 3, 1, 1),
        c("32->64 3x3 s2 14", 32, 64, 14, 3, 2, 1),
        c("32->64 1x1 s2 14", 32, 64, 14, 1, 2, 0),
        c("64->64 3x3 s1 7", 64, 64, 7, 3, 1, 1),
    ]
}

/// `--stat min`: report the fastest call instead of the median.
static STAT_MIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The smallest of `repeat` medians of `runs` timed calls (after warm-up).
/// Taking the best median filters out stretches where another process holds
/// a core (an OpenMP barrier then waits a whole scheduler slice).
fn median_ms(runs: usize, repeat: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..5.max(runs / 5) {
        f();
    }
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let mut t: Vec<f64> = (0..runs.max(1))
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(f64::total_cmp);
        let pick = if STAT_MIN.load(std::sync::atomic::Ordering::Relaxed) { 0 } else { t.len() / 2 };
        best = best.min(t[pick]);
    }
    best
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32 - 0.5).collect()
}

fn table(format: Format, algorithm: Algorithm, batch: usize, runs: usize, repeat: usize, verbose: bool) -> Result<(), bottlenet_onednn::Error> {
    println!(
        "\nbottlenet-onednn  format={format:?} algorithm={algorithm:?} batch={batch} runs={runs} repeat={repeat} stat={} (ms, GFLOP/s)",
        if STAT_MIN.load(std::sync::atomic::Ordering::Relaxed) { "min" } else { "median" }
    );
    println!(
        "{:<24} {:>9} {:>7} {:>9} {:>7} {:>9} {:>7} {:>9}",
        "layer", "fwd ms", "GF/s", "bwd-d ms", "GF/s", "bwd-w ms", "GF/s", "sum ms"
    );
    let (mut tf, mut td, mut tw) = (0.0, 0.0, 0.0);
    for (name, s) in layers(batch) {
        let mut k = Conv2dKernels::with_options(s, format, algorithm)?;
        let x = values(s.input_len(), 1);
        let w = values(s.weight_len(), 2);
        let dy = values(s.output_len(), 3);
        let mut y = vec![0.0; s.output_len()];
        let mut dx = vec![0.0; s.input_len()];
        let mut dw = vec![0.0; s.weight_len()];
        let mut db = vec![0.0; s.bias_len()];
        let mut err = None;
        let f = median_ms(runs, repeat, || {
            if let Err(e) = k.forward(&x, &w, None, &mut y) {
                err = Some(e);
            }
        });
        let d = median_ms(runs, repeat, || {
            if let Err(e) = k.backward_data(&dy, &w, &mut dx) {
                err = Some(e);
            }
        });
        let wt = median_ms(runs, repeat, || {
            if let Err(e) = k.backward_weights(&x, &dy, &mut dw, Some(&mut db)) {
                err = Some(e);
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let gf = |ms: f64| s.flops() / (ms * 1e6);
        println!(
            "{:<24} {:>9.3} {:>7.1} {:>9.3} {:>7.1} {:>9.3} {:>7.1} {:>9.3}",
            name, f, gf(f), d, gf(d), wt, gf(wt), f + d + wt
        );
        if verbose {
            for line in k.describe().lines() {
                println!("    {line}");
            }
        }
        tf += f;
        td += d;
        tw += wt;
    }
    println!("{:<24} {:>9.3} {:>7} {:>9.3} {:>7} {:>9.3} {:>7} {:>9.3}", "total", tf, "", td, "", tw, "", tf + td + tw);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let runs = value("--runs").and_then(|v| v.parse().ok()).unwrap_or(30);
    if value("--stat").as_deref() == Some("min") {
        STAT_MIN.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let repeat = value("--repeat").and_then(|v| v.parse().ok()).unwrap_or(1);
    let batch = value("--batch").and_then(|v| v.parse().ok()).unwrap_or(64);
    let verbose = args.iter().any(|a| a == "--verbose");
    let format = match value("--format").as_deref() {
        Some("plain") => Format::Plain,
        Some("tuned") => Format::Tuned,
        _ => Format::Any,
    };
    let algorithm = match value("--alg").as_deref() {
        Some("auto") => Algorithm::Auto,
        _ => Algorithm::Direct,
    };
    let sets = if args.iter().any(|a| a == "--all") {
        vec![
            (Format::Any, Algorithm::Direct),
            (Format::Plain, Algorithm::Direct),
            (Format::Tuned, Algorithm::Direct),
            (Format::Any, Algorithm::Auto),
        ]
    } else {
        vec![(format, algorithm)]
    };
    println!(
        "OMP_NUM_THREADS={}",
        std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "(unset)".into())
    );
    for (f, a) in sets {
        if let Err(e) = table(f, a, batch, runs, repeat, verbose) {
            eprintln!("conv_bench: {e}");
            std::process::exit(1);
        }
    }
}
