//! Hands the pages the C allocator holds free back to the system, at one quiet moment of a
//! process: after `serve` or `infer` has loaded and planned its graphs, before the first request.
//!
//! Why: the binary runs glibc's malloc with thresholds chosen for the training step
//! (`bottlenet-cli/src/c_runtime_env.rs`: allocations up to 32 MiB from the heap, trimmed only
//! past 1 GiB free), so what loading frees (a graph's ONNX export, the planner's copy of each
//! weight) stays resident. glibc returns only the top of a heap by itself; `malloc_trim(0)` also
//! releases the free pages in the middle of every arena. Measured on a ResNet-50 bundle served by
//! oneDNN (docs/engines.md): 555 MB resident after loading without it, about 260 MB with the
//! weights alone.
//!
//! Elsewhere (musl, other systems) [`release_free_memory`] does nothing: there is no such call,
//! and those allocators hand large blocks back themselves.

/// Asks the C allocator to give its free pages back to the system. Returns whether it gave any
/// back (always `false` off glibc). Live allocations are untouched; the call walks and locks each
/// arena in turn, so make it where no other thread is busy allocating.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return glibc::trim();
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    use std::ffi::c_int;

    unsafe extern "C" {
        /// glibc, `<malloc.h>`: releases free memory from the top of the heap and the free
        /// pages inside every arena; `pad` bytes stay at the top. 1 if anything was released.
        fn malloc_trim(pad: usize) -> c_int;
    }

    pub(crate) fn trim() -> bool {
        // SAFETY: malloc_trim takes no pointers and keeps every live allocation; glibc locks
        // each arena while it walks it, so it is sound beside other threads' allocations.
        unsafe { malloc_trim(0) == 1 }
    }
}
