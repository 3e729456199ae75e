//! A [`WinogradConv`] as a step of a planned network: its source is a producer's `nChw8c`
//! memory, its destination a buffer the network owns in `nChw8c`, and its matrix products
//! oneDNN's `sgemm`, one OpenMP thread per rayon task (the tasks are the parallelism).
//!
//! Invariants: both pointers stay valid and in place for the network's life (library-allocated
//! memories and the planner's `Aligned` storage never move); nothing else reads or writes the
//! destination while the step runs, and the source is not the caller's input (whose buffer is
//! only attached during a run), so the step holds the two regions alone while it runs.

use super::handles::check;
use crate::Result;
use crate::ffi::*;
use crate::winograd::{Scratch, WinogradConv};
use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicI32, Ordering};

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
            let status = sgemm_on_one_thread(m, n, k, a, b, c);
            if status != dnnl_success {
                failed.store(status, Ordering::Relaxed);
            }
        };
        self.layer.run(source, destination, &gemm, scratch);
        check("dnnl_sgemm", failed.load(Ordering::Relaxed))
    }
}

/// Row-major `c[m×n] = a[m×k] · b[k×n]` on the calling thread alone.
fn sgemm_on_one_thread(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> dnnl_status_t {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "sgemm operands shorter than their shapes");
    let dim = |v: usize| dnnl_dim_t::try_from(v).unwrap_or(dnnl_dim_t::MAX);
    // SAFETY: plain OpenMP calls on the calling thread's own setting, restored below.
    let previous = unsafe { omp_get_max_threads() };
    // SAFETY: as above.
    unsafe { omp_set_num_threads(1) };
    // SAFETY: the three buffers hold the shapes' values (asserted), row-major with leading
    // dimensions k, n and n; `c` is not aliased (`&mut`).
    let status = unsafe {
        dnnl_sgemm(b'N' as c_char, b'N' as c_char, dim(m), dim(n), dim(k), 1.0, a.as_ptr(), dim(k), b.as_ptr(), dim(n), 0.0, c.as_mut_ptr(), dim(n))
    };
    // SAFETY: as above.
    unsafe { omp_set_num_threads(previous.max(1) as c_int) };
    status
}
