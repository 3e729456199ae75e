//! A [`WinogradConv`] as a step of a planned network: its source is a producer's `nChw8c`
//! memory, its destination a buffer the network owns in `nChw8c`, its parts run on the OpenMP
//! team oneDNN's own primitives use (libgomp's `GOMP_parallel`, what `#pragma omp parallel`
//! compiles to), and its matrix products are oneDNN's `sgemm`, which runs on the calling thread
//! inside a parallel region. One pool of threads for the whole network: a second one (rayon's)
//! measured slower, its threads and OpenMP's spinning for the same two cores.
//!
//! Invariants: both pointers stay valid and in place for the network's life (library-allocated
//! memories and the planner's `Aligned` storage never move); nothing else reads or writes the
//! destination while the step runs, and the source is not the caller's input (whose buffer is
//! only attached during a run), so the step holds the two regions alone while it runs.

use super::handles::check;
use crate::Result;
use crate::ffi::*;
use crate::winograd::{Scratch, WinogradConv};
use std::ffi::{c_char, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

pub(super) struct WinogradStep {
    layer: WinogradConv,
    source: *const f32,
    destination: *mut f32,
}

impl WinogradStep {
    /// `source` and `destination` hold at least [`WinogradConv::lens`] values each (the module's
    /// invariants).
    pub(super) fn new(layer: WinogradConv, source: *const f32, destination: *mut f32) -> Self {
        Self { layer, source, destination }
    }

    /// Runs the layer with one task per `scratch` buffer.
    pub(super) fn run(&mut self, scratch: &mut [Scratch]) -> Result<()> {
        let [source_len, destination_len] = self.layer.lens();
        // SAFETY: the module's invariants: both regions are live, this long, and not aliased
        // while the step runs (`&mut self`, and the network runs one step at a time).
        let (source, destination) = unsafe {
            (std::slice::from_raw_parts(self.source, source_len), std::slice::from_raw_parts_mut(self.destination, destination_len))
        };
        let failed = AtomicI32::new(dnnl_success);
        let gemm = |m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]| {
            let status = sgemm_here(m, n, k, a, b, c);
            if status != dnnl_success {
                failed.store(status, Ordering::Relaxed);
            }
        };
        self.layer.run(source, destination, &gemm, &on_openmp_team, scratch);
        check("dnnl_sgemm", failed.load(Ordering::Relaxed))
    }
}

/// What one `GOMP_parallel` region runs: `body(k)` for every `k < parts`, spread over the team.
struct Region<'a> {
    body: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    panicked: AtomicBool,
}

extern "C" fn region_body(data: *mut c_void) {
    // SAFETY: `data` is the `Region` that `on_openmp_team` keeps alive until `GOMP_parallel`
    // has returned, which is after every thread of the team has left this function.
    let region = unsafe { &*data.cast_const().cast::<Region<'_>>() };
    // SAFETY: plain OpenMP queries inside the parallel region.
    let (me, team) = unsafe { (omp_get_thread_num(), omp_get_num_threads()) };
    let (me, team) = (usize::try_from(me).unwrap_or(0), usize::try_from(team).unwrap_or(1).max(1));
    for k in (me..region.parts).step_by(team) {
        // A panic must not unwind into C: it is caught here and raised again after the region.
        if catch_unwind(AssertUnwindSafe(|| (region.body)(k))).is_err() {
            region.panicked.store(true, Ordering::Relaxed);
        }
    }
}

/// `body(k)` for every `k < parts` on the calling thread's OpenMP team (its
/// `omp_set_num_threads`, which the network set for this run); on the calling thread alone for
/// one part.
fn on_openmp_team(parts: usize, body: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 {
        (0..parts).for_each(body);
        return;
    }
    let region = Region { body, parts, panicked: AtomicBool::new(false) };
    let threads = c_uint::try_from(parts).unwrap_or(c_uint::MAX);
    // SAFETY: `region_body` only reads `region`, which outlives the call; GOMP_parallel returns
    // once the whole team has finished (flags 0: no proc_bind request).
    unsafe { GOMP_parallel(region_body, (&raw const region).cast_mut().cast(), threads, 0) };
    if region.panicked.load(Ordering::Relaxed) {
        panic!("a Winograd layer's part panicked on an OpenMP thread");
    }
}

/// Row-major `c[m×n] = a[m×k] · b[k×n]` on the calling thread: oneDNN does not open a nested
/// parallel region inside the team's, and on a single part the network runs on one thread.
fn sgemm_here(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> dnnl_status_t {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "sgemm operands shorter than their shapes");
    let dim = |v: usize| dnnl_dim_t::try_from(v).unwrap_or(dnnl_dim_t::MAX);
    // SAFETY: the three buffers hold the shapes' values (asserted), row-major with leading
    // dimensions k, n and n; `c` is not aliased (`&mut`).
    unsafe { dnnl_sgemm(b'N' as c_char, b'N' as c_char, dim(m), dim(n), dim(k), 1.0, a.as_ptr(), dim(k), b.as_ptr(), dim(n), 0.0, c.as_mut_ptr(), dim(n)) }
}
