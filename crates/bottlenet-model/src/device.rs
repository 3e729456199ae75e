//! Which compute device runs the model: pure-Rust CPU (`flex`, the default) or, when this crate is
//! built with the `cuda` / `wgpu` feature, a GPU; with the `ndarray` feature also burn's ndarray
//! CPU backend on the system OpenBLAS (kept for the engine bake-off, docs/engines.md).

use crate::error::{Error, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A compute device named on the command line or in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// burn's multithreaded pure-Rust CPU backend.
    #[default]
    Flex,
    /// The first CUDA GPU (needs the `cuda` feature).
    Cuda,
    /// The default wgpu adapter (needs the `wgpu` feature).
    Wgpu,
    /// burn's ndarray CPU backend with the system OpenBLAS (needs the `ndarray` feature).
    Ndarray,
}

impl DeviceChoice {
    /// Every choice, in the order `--device` lists them.
    pub const ALL: [DeviceChoice; 4] = [DeviceChoice::Flex, DeviceChoice::Cuda, DeviceChoice::Wgpu, DeviceChoice::Ndarray];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Flex => "flex",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Ndarray => "ndarray",
        }
    }

    /// Whether this build can create the device.
    pub fn is_available(self) -> bool {
        match self {
            DeviceChoice::Flex => true,
            DeviceChoice::Cuda => cfg!(feature = "cuda"),
            DeviceChoice::Wgpu => cfg!(feature = "wgpu"),
            DeviceChoice::Ndarray => cfg!(feature = "ndarray"),
        }
    }

    /// The inference device. Training wraps it: `choice.device()?.autodiff()`.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Flex => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Ok(Device::cuda(0)),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            // Deprecated upstream in favour of flex; kept selectable to measure it against flex.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            DeviceChoice::Ndarray => Ok(Device::ndarray()),
            #[allow(unreachable_patterns)]
            other => Err(Error::Device(other.name().to_string())),
        }
    }
}

/// What runs the model on `device`, for logs and profiles: for a GPU backend the adapter as it
/// names itself and what kernels are compiled for (e.g. lavapipe's `llvmpipe (LLVM 15…)` under
/// wgpu, so a run on a software rasterizer or an unexpected adapter shows in the log); for flex
/// the CPU backend.
pub fn describe(choice: DeviceChoice, device: &Device) -> String {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    if !matches!(choice, DeviceChoice::Flex | DeviceChoice::Ndarray) {
        return match device.identity() {
            Some(id) => format!("{} [{}]", id.name, id.fingerprint),
            None => format!("{choice} (the backend reports no adapter)"),
        };
    }
    let _ = device;
    match choice {
        DeviceChoice::Ndarray => format!("{choice}: burn's ndarray CPU backend with the system OpenBLAS"),
        _ => format!("{choice}: burn's multithreaded CPU backend"),
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::Config(format!("unknown device {s:?}; expected one of: flex, cuda, wgpu, ndarray")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;

    #[test]
    fn parses_and_flex_is_always_there() {
        assert_eq!("FLEX".parse::<DeviceChoice>().unwrap(), DeviceChoice::Flex);
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!(DeviceChoice::Flex.device().is_ok());
        assert_eq!(DeviceChoice::Cuda.device().is_ok(), cfg!(feature = "cuda"));
    }
}
