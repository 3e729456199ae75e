//! `bottlenet-xnnpack` owns the CPU kernels of the default inference engine: XNNPACK (TFLite's
//! CPU library, Debian's `libxnnpack-dev`, with AVX-512 kernels on the server and NEON on an
//! aarch64 phone) behind a safe network type. It is the workspace's one crate with `unsafe` code,
//! all of it in `ffi` and `network`; it knows nothing of ONNX or burn (the CLI's
//! `xnnpack_engine` builds a [`NetworkBuilder`] from an exported half).
//!
//! * [`NetworkBuilder`] records layers on NHWC values and checks every shape (pure Rust, built
//!   and tested everywhere);
//! * [`Network`] creates XNNPACK's operators from it (weights packed once), owns every buffer
//!   they read and write, and runs a batch: [`Network::run`].
//!
//! Where the libraries were not installed at build time (`build.rs`), [`linked`] is false and
//! [`NetworkBuilder::build`] refuses with [`Error::NotLinked`], which names the packages.

mod builder;
#[cfg(xnnpack_linked)]
mod ffi;
mod network;

pub use builder::{Extent, Layer, NetworkBuilder, Padding, ValueId, Window};
pub use network::Network;

/// What can go wrong building or running a network, each a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The build found no XNNPACK for the target.
    #[error("this binary was built without XNNPACK; install Debian's libxnnpack-dev and libpthreadpool-dev, then rebuild (or pick another engine)")]
    NotLinked,
    /// A layer that XNNPACK cannot take, or shapes that do not fit.
    #[error("{0}")]
    Invalid(String),
    /// XNNPACK returned a status other than success.
    #[error("XNNPACK {call} failed: {status}")]
    Call { call: &'static str, status: &'static str },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Whether this build links XNNPACK (its packages were found for the target by `build.rs`).
pub fn linked() -> bool {
    cfg!(xnnpack_linked)
}
