//! ResNet-50 (torchvision's layout), batch 1, 3×224×224, in XNNPACK's NHWC operators, to set
//! beside tract, onnxruntime and oneDNN (docs/engines.md). Random weights stand for folded
//! BatchNorm (each convolution has a bias); ReLU is fused into the convolutions and the residual
//! adds through their output clamp. Every operator is created and set up once; a timed run is
//! one `xnn_run_operator` per operator, in order. The RB1 head is the stem and layer1.0 (the
//! phone half without the reduction unit); the tail is the rest.
//!
//! Usage: `cargo run --release -- [THREADS]` (default 2).

use std::ffi::c_void;
use std::time::Instant;

type Operator = *mut c_void;
type ThreadPool = *mut c_void;

unsafe extern "C" {
    fn xnn_initialize(allocator: *const c_void) -> i32;
    fn xnn_create_convolution2d_nhwc_f32(
        pad_top: u32, pad_right: u32, pad_bottom: u32, pad_left: u32, kernel_h: u32, kernel_w: u32,
        stride_h: u32, stride_w: u32, dilation_h: u32, dilation_w: u32, groups: u32,
        group_in: usize, group_out: usize, in_stride: usize, out_stride: usize,
        kernel: *const f32, bias: *const f32, out_min: f32, out_max: f32, flags: u32, op: *mut Operator,
    ) -> i32;
    fn xnn_setup_convolution2d_nhwc_f32(op: Operator, batch: usize, h: usize, w: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> i32;
    fn xnn_create_max_pooling2d_nhwc_f32(
        pad_top: u32, pad_right: u32, pad_bottom: u32, pad_left: u32, pool_h: u32, pool_w: u32,
        stride_h: u32, stride_w: u32, dilation_h: u32, dilation_w: u32, channels: usize,
        in_stride: usize, out_stride: usize, out_min: f32, out_max: f32, flags: u32, op: *mut Operator,
    ) -> i32;
    fn xnn_setup_max_pooling2d_nhwc_f32(op: Operator, batch: usize, h: usize, w: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> i32;
    fn xnn_create_add_nd_f32(out_min: f32, out_max: f32, flags: u32, op: *mut Operator) -> i32;
    fn xnn_setup_add_nd_f32(op: Operator, dims1: usize, shape1: *const usize, dims2: usize, shape2: *const usize, a: *const f32, b: *const f32, out: *mut f32, pool: ThreadPool) -> i32;
    fn xnn_create_global_average_pooling_nwc_f32(channels: usize, in_stride: usize, out_stride: usize, out_min: f32, out_max: f32, flags: u32, op: *mut Operator) -> i32;
    fn xnn_setup_global_average_pooling_nwc_f32(op: Operator, batch: usize, width: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> i32;
    fn xnn_create_fully_connected_nc_f32(inputs: usize, outputs: usize, in_stride: usize, out_stride: usize, kernel: *const f32, bias: *const f32, out_min: f32, out_max: f32, flags: u32, op: *mut Operator) -> i32;
    fn xnn_setup_fully_connected_nc_f32(op: Operator, batch: usize, input: *const f32, output: *mut f32, pool: ThreadPool) -> i32;
    fn xnn_run_operator(op: Operator, pool: ThreadPool) -> i32;
    fn pthreadpool_create(threads: usize) -> ThreadPool;
}

fn check(status: i32, what: &str) {
    assert_eq!(status, 0, "XNNPACK {what} failed with status {status}");
}

/// Deterministic values in ±scale/2 (a linear congruential generator: weights need no quality).
fn values(n: usize, state: &mut u64, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect()
}

/// Operators in run order, and the buffers they read and write (owned here; XNNPACK keeps
/// pointers into them from setup on, so they are never resized).
struct Network {
    ops: Vec<Operator>,
    buffers: Vec<Vec<f32>>,
    pool: ThreadPool,
    multiply_adds: f64,
    seed: u64,
}

impl Network {
    fn buffer(&mut self, len: usize) -> usize {
        self.buffers.push(vec![0.0; len]);
        self.buffers.len() - 1
    }

    /// A k×k convolution with stride s and symmetric padding p of an h×w×c_in buffer; returns
    /// the output buffer and its height and width.
    #[allow(clippy::too_many_arguments)]
    fn conv(&mut self, src: usize, h: usize, w: usize, c_in: usize, c_out: usize, k: usize, s: usize, p: usize, relu: bool) -> (usize, usize, usize) {
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let kernel = values(c_out * k * k * c_in, &mut self.seed, 0.1);
        let bias = values(c_out, &mut self.seed, 0.1);
        let (u, mut op) = (|v: usize| v as u32, std::ptr::null_mut());
        let out_min = if relu { 0.0 } else { f32::NEG_INFINITY };
        // SAFETY: the kernel and bias are read (packed) during the call only.
        check(unsafe { xnn_create_convolution2d_nhwc_f32(u(p), u(p), u(p), u(p), u(k), u(k), u(s), u(s), 1, 1, 1, c_in, c_out, c_in, c_out, kernel.as_ptr(), bias.as_ptr(), out_min, f32::INFINITY, 0, &mut op) }, "convolution create");
        let dst = self.buffer(oh * ow * c_out);
        // SAFETY: both buffers outlive the operator and are never reallocated.
        check(unsafe { xnn_setup_convolution2d_nhwc_f32(op, 1, h, w, self.buffers[src].as_ptr(), self.buffers[dst].as_mut_ptr(), self.pool) }, "convolution setup");
        self.ops.push(op);
        self.multiply_adds += (oh * ow * c_out * k * k * c_in) as f64;
        (dst, oh, ow)
    }

    fn add_relu(&mut self, a: usize, b: usize, len: usize) -> usize {
        let mut op = std::ptr::null_mut();
        check(unsafe { xnn_create_add_nd_f32(0.0, f32::INFINITY, 0, &mut op) }, "add create");
        let dst = self.buffer(len);
        let shape = [len];
        // SAFETY: as in `conv`.
        check(unsafe { xnn_setup_add_nd_f32(op, 1, shape.as_ptr(), 1, shape.as_ptr(), self.buffers[a].as_ptr(), self.buffers[b].as_ptr(), self.buffers[dst].as_mut_ptr(), self.pool) }, "add setup");
        self.ops.push(op);
        dst
    }

    /// Median of 20 timed runs of `ops` after 3 untimed ones, in ms.
    fn time(&self, ops: &[Operator]) -> f64 {
        let run = || {
            for &op in ops {
                // SAFETY: every operator was set up on live buffers.
                check(unsafe { xnn_run_operator(op, self.pool) }, "run");
            }
        };
        for _ in 0..3 {
            run();
        }
        let mut ms: Vec<f64> = (0..20)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    }
}

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |t| t.parse().expect("THREADS is a whole number"));
    check(unsafe { xnn_initialize(std::ptr::null()) }, "initialize");
    let pool = unsafe { pthreadpool_create(threads) };
    let mut net = Network { ops: Vec::new(), buffers: Vec::new(), pool, multiply_adds: 0.0, seed: 7 };
    let input = net.buffer(224 * 224 * 3);
    net.buffers[input] = values(224 * 224 * 3, &mut net.seed, 1.0);
    // Stem: 7×7/2 conv + ReLU, 3×3/2 max-pool with padding 1.
    let (x, h, w) = net.conv(input, 224, 224, 3, 64, 7, 2, 3, true);
    let (ph, pw) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let mut op = std::ptr::null_mut();
    check(unsafe { xnn_create_max_pooling2d_nhwc_f32(1, 1, 1, 1, 3, 3, 2, 2, 1, 1, 64, 64, 64, f32::NEG_INFINITY, f32::INFINITY, 0, &mut op) }, "max-pool create");
    let pooled = net.buffer(ph * pw * 64);
    check(unsafe { xnn_setup_max_pooling2d_nhwc_f32(op, 1, h, w, net.buffers[x].as_ptr(), net.buffers[pooled].as_mut_ptr(), pool) }, "max-pool setup");
    net.ops.push(op);
    // Bottleneck blocks [3, 4, 6, 3], torchvision's strides (on the 3×3) and downsamples.
    let (mut cur, mut h, mut w, mut c) = (pooled, ph, pw, 64);
    let mut rb1_end = None;
    for (stage, (&blocks, &planes)) in [3usize, 4, 6, 3].iter().zip(&[64usize, 128, 256, 512]).enumerate() {
        for block in 0..blocks {
            let s = if block == 0 && stage > 0 { 2 } else { 1 };
            let out = planes * 4;
            let (a, _, _) = net.conv(cur, h, w, c, planes, 1, 1, 0, true);
            let (b, oh, ow) = net.conv(a, h, w, planes, planes, 3, s, 1, true);
            let (main_path, _, _) = net.conv(b, oh, ow, planes, out, 1, 1, 0, false);
            let skip = if block == 0 { net.conv(cur, h, w, c, out, 1, s, 0, false).0 } else { cur };
            cur = net.add_relu(main_path, skip, oh * ow * out);
            (h, w, c) = (oh, ow, out);
            rb1_end.get_or_insert(net.ops.len());
        }
    }
    let mut op = std::ptr::null_mut();
    check(unsafe { xnn_create_global_average_pooling_nwc_f32(c, c, c, f32::NEG_INFINITY, f32::INFINITY, 0, &mut op) }, "average-pool create");
    let pooled = net.buffer(c);
    check(unsafe { xnn_setup_global_average_pooling_nwc_f32(op, 1, h * w, net.buffers[cur].as_ptr(), net.buffers[pooled].as_mut_ptr(), pool) }, "average-pool setup");
    net.ops.push(op);
    let (fc_w, fc_b) = (values(1000 * c, &mut net.seed, 0.01), values(1000, &mut net.seed, 0.01));
    let mut op = std::ptr::null_mut();
    check(unsafe { xnn_create_fully_connected_nc_f32(c, 1000, c, 1000, fc_w.as_ptr(), fc_b.as_ptr(), f32::NEG_INFINITY, f32::INFINITY, 0, &mut op) }, "fc create");
    let logits = net.buffer(1000);
    check(unsafe { xnn_setup_fully_connected_nc_f32(op, 1, net.buffers[pooled].as_ptr(), net.buffers[logits].as_mut_ptr(), pool) }, "fc setup");
    net.ops.push(op);
    net.multiply_adds += (c * 1000) as f64;

    let rb1_end = rb1_end.expect("ResNet-50 has blocks");
    let full = net.time(&net.ops);
    let head = net.time(&net.ops[..rb1_end]);
    let tail = net.time(&net.ops[rb1_end..]);
    let gmacs = net.multiply_adds / 1e9;
    println!("XNNPACK (Debian libxnnpack0), {threads} threads, ResNet-50 batch 1 224²: full {full:.2} ms ({gmacs:.2} GMAC, {:.0} GFLOP/s); RB1 head (stem + layer1.0) {head:.2} ms; RB1 tail (layer1.1 … fc) {tail:.2} ms", 2.0 * gmacs / (full / 1e3));
}
