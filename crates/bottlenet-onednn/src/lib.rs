//! Safe oneDNN convolution primitives (forward, backward-data,
//! backward-weights) on plain NCHW f32 buffers for the training engine, and
//! whole inference networks in oneDNN's blocked formats; the FFI lives in
//! ffi.rs.
//!
//! The crate owns five things:
//!
//! * [`Conv2dShape`]: one 2-D convolution's geometry (PyTorch conventions:
//!   dilation 1 = none, weight `[out, in/groups, kh, kw]`) and its checks;
//! * [`Conv2dKernels`]: the oneDNN engine, stream, primitives, reorders and
//!   scratch memory for one shape, created once and reused for every call;
//! * [`NetworkBuilder`] and [`Network`]: an inference network (convolutions
//!   with fused ReLU and residual sums, transposed convolutions, pooling, a
//!   fully-connected layer) checked in Rust, then planned as primitives that
//!   keep their activations in the formats they chose;
//! * the Winograd 3×3 convolutions that networks use on AVX2 hosts (`winograd.rs`);
//! * [`Error`]: what can go wrong, one line each.
//!
//! Buffers crossing the API are plain row-major `f32`: input/output NCHW,
//! weight OIHW (with groups `[out, in/groups, kh, kw]`), bias `[out]`. Inside,
//! the primitives pick their own (blocked) memory formats and the plain
//! buffers are reordered in and out; see [`Format`] for the measurement
//! behind that choice.
//!
//! oneDNN is found at build time (see `build.rs`). Without it the crate still
//! builds, [`linked`] returns `false` and every constructor returns
//! [`Error::NotLinked`].

mod ffi;
// Without oneDNN the layers are described but never planned (the stub `Network` refuses).
#[cfg_attr(not(onednn_linked), allow(dead_code))]
mod network;
mod primitive;
mod shape;
// Used by the network planner only where oneDNN is linked.
#[cfg_attr(not(onednn_linked), allow(dead_code))]
mod winograd;

pub use network::{NetworkBuilder, ValueId, Window};
pub use primitive::{Algorithm, Conv2dKernels, Format, Network};
pub use shape::Conv2dShape;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The crate was built without oneDNN.
    #[error(
        "bottlenet-onednn was built without oneDNN: install the Debian package libdnnl-dev and rebuild"
    )]
    NotLinked,
    /// A shape is invalid or a buffer length does not match the shape.
    #[error("bad convolution shape: {0}")]
    Shape(String),
    /// A oneDNN C call returned a non-success status.
    #[error("oneDNN call {call} failed with status {status} ({})", status_name(*.status))]
    Dnnl {
        /// The C function that failed.
        call: &'static str,
        /// Its `dnnl_status_t` value.
        status: i32,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether this build is linked against oneDNN.
pub fn linked() -> bool {
    cfg!(onednn_linked)
}

/// The name of a `dnnl_status_t` value (values from `dnnl_types.h`).
fn status_name(status: i32) -> &'static str {
    match status {
        0 => "dnnl_success",
        1 => "dnnl_out_of_memory",
        2 => "dnnl_invalid_arguments",
        3 => "dnnl_unimplemented",
        4 => "dnnl_iterator_ends",
        5 => "dnnl_runtime_error",
        6 => "dnnl_not_required",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_one_line() {
        for e in [
            Error::NotLinked,
            Error::Shape("input has 3 elements, expected 4".into()),
            Error::Dnnl { call: "dnnl_primitive_create", status: 3 },
        ] {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
        assert!(Error::NotLinked.to_string().contains("libdnnl-dev"));
        assert!(
            Error::Dnnl { call: "x", status: 3 }.to_string().contains("dnnl_unimplemented")
        );
    }
}
