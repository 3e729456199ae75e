//! Which engine runs a bundle's halves for inference (`--engine` of `serve`, `infer`, `profile`,
//! `demo` and `bench`): on the CPU, where both are built, the faster of XNNPACK (cargo feature
//! `xnnpack`, [`crate::xnnpack_engine`]) and tract (feature `tract`, [`crate::tract_engine`]) on
//! each graph, timed at load ([`crate::engine_trial`]); else whichever of them is built, else
//! burn; on a GPU `--device`, burn. Training always runs on burn.

/// The tract release the engine is built on: the exact `=` pin of `tract-onnx` in the workspace's
/// Cargo.toml (change both together).
pub const TRACT_VERSION: &str = "0.23.9";

/// The XNNPACK the engine links: Debian 12's `libxnnpack0` snapshot (`/usr/include/xnnpack.h`).
pub const XNNPACK_VERSION: &str = "0.0~git20220216 (Debian 12)";

/// Multiply-adds per sample from which an exported graph (tract's or XNNPACK's) runs on all
/// `--threads` rather than on the calling thread: about 1 ms of work on one core here (38
/// GFMA/s), where waking the pool's other thread (~0.3 ms) costs less than the second core
/// saves. The compact network's graphs are below (4–20 MFMA), ResNet-50's far above (0.4–4.1
/// GFMA: docs/engines.md).
pub const PARALLEL_MIN_FMA: f64 = 32e6;

/// Environment variable that moves [`PARALLEL_MIN_FMA`] (in millions; 0: every graph on all
/// threads), for a phone or server whose cores wake faster or slower than this host's.
pub const PARALLEL_MIN_MFMA_ENV: &str = "BOTTLENET_PARALLEL_MIN_MFMA";

/// [`PARALLEL_MIN_FMA`], or what [`PARALLEL_MIN_MFMA_ENV`] says.
#[cfg(feature = "exported-graphs")]
pub fn parallel_min_fma() -> bottlenet_runtime::Result<f64> {
    std::env::var(PARALLEL_MIN_MFMA_ENV).map_or(Ok(PARALLEL_MIN_FMA), |text| parse_parallel_min_mfma(&text))
}

/// The multiply-adds that [`PARALLEL_MIN_MFMA_ENV`]'s text (millions) stands for.
#[cfg(feature = "exported-graphs")]
fn parse_parallel_min_mfma(text: &str) -> bottlenet_runtime::Result<f64> {
    match text.trim().parse::<f64>() {
        Ok(mfma) if mfma.is_finite() && mfma >= 0.0 => Ok(mfma * 1e6),
        _ => Err(bottlenet_runtime::Error::Config(format!("{PARALLEL_MIN_MFMA_ENV} must be a number of millions of multiply-adds, 0 or more (0: every graph on all threads), got '{text}'"))),
    }
}

/// Which engine runs a bundle's halves for inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// XNNPACK and tract both plan every exported graph, each is timed at load, and the faster
    /// runs it (the default on `--device flex` where both are built).
    Auto,
    /// XNNPACK on the CPU: the exported ONNX graphs as NHWC operators (the default on `--device
    /// flex` where the build found Debian's libxnnpack-dev and has no tract).
    Xnnpack,
    /// tract on the CPU: the exported ONNX graphs (the default on `--device flex` without XNNPACK).
    Tract,
    /// burn on `--device` (flex, wgpu, cuda, ndarray): the modules as trained.
    Burn,
}

/// Whether this binary can run XNNPACK: built with the feature, and the library found.
pub fn xnnpack_built() -> bool {
    #[cfg(feature = "xnnpack")]
    return bottlenet_xnnpack::linked();
    #[cfg(not(feature = "xnnpack"))]
    return false;
}

impl Engine {
    /// `requested`, else on the CPU the faster of XNNPACK and tract per graph where both are
    /// built in (`auto`), else the one built in, and burn on any other device. The CPU engines
    /// are refused in one line with a GPU device or where they are not built in.
    pub fn resolve(requested: Option<Engine>, device: bottlenet_model::DeviceChoice) -> anyhow::Result<Engine> {
        let on_cpu = device == bottlenet_model::DeviceChoice::Flex;
        match requested {
            Some(engine @ (Engine::Auto | Engine::Tract | Engine::Xnnpack)) if !on_cpu => {
                anyhow::bail!("--engine {engine} runs on the CPU only; pass --device flex with it, or --engine burn to run on {device}")
            }
            Some(Engine::Tract) if !cfg!(feature = "tract") => {
                anyhow::bail!("--engine tract is not compiled into this binary; rebuild with `--features tract` or pass --engine burn")
            }
            Some(Engine::Xnnpack) if !xnnpack_built() => {
                anyhow::bail!("--engine xnnpack is not in this binary: install Debian's libxnnpack-dev and libpthreadpool-dev and rebuild (feature `xnnpack`), or pass --engine tract")
            }
            Some(Engine::Auto) if !(cfg!(feature = "tract") && xnnpack_built()) => {
                anyhow::bail!("--engine auto times XNNPACK against tract and this binary lacks one of them: pass --engine tract or --engine xnnpack (XNNPACK needs Debian's libxnnpack-dev and libpthreadpool-dev, and the features tract and xnnpack)")
            }
            Some(engine) => Ok(engine),
            None if on_cpu && xnnpack_built() && cfg!(feature = "tract") => Ok(Engine::Auto),
            None if on_cpu && xnnpack_built() => Ok(Engine::Xnnpack),
            None if on_cpu && cfg!(feature = "tract") => Ok(Engine::Tract),
            None => Ok(Engine::Burn),
        }
    }

    /// How reports and logs name it.
    pub fn describe(self) -> String {
        let small = format!("graphs under {:.0} MFMA on one thread", PARALLEL_MIN_FMA / 1e6);
        match self {
            Engine::Auto => format!("the faster of XNNPACK {XNNPACK_VERSION} and tract {TRACT_VERSION} on each graph, timed at load (exported ONNX halves, BatchNorm folded; {small})"),
            Engine::Xnnpack => format!("XNNPACK {XNNPACK_VERSION} (exported ONNX halves, BatchNorm folded, NHWC; {small})"),
            Engine::Tract => format!("tract {TRACT_VERSION} (exported ONNX halves, BatchNorm folded; {small})"),
            Engine::Burn => "burn".to_string(),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Auto => "auto",
            Engine::Xnnpack => "xnnpack",
            Engine::Tract => "tract",
            Engine::Burn => "burn",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottlenet_model::DeviceChoice;

    #[test]
    fn the_cpu_defaults_to_the_fastest_engine_built_in_and_a_gpu_to_burn() {
        let cpu = Engine::resolve(None, DeviceChoice::Flex).unwrap();
        let expected = if xnnpack_built() && cfg!(feature = "tract") {
            Engine::Auto
        } else if xnnpack_built() {
            Engine::Xnnpack
        } else if cfg!(feature = "tract") {
            Engine::Tract
        } else {
            Engine::Burn
        };
        assert_eq!(cpu, expected);
        assert_eq!(Engine::resolve(None, DeviceChoice::Wgpu).unwrap(), Engine::Burn);
        assert_eq!(Engine::resolve(Some(Engine::Burn), DeviceChoice::Flex).unwrap(), Engine::Burn);
        for engine in [Engine::Auto, Engine::Tract, Engine::Xnnpack] {
            let refused = Engine::resolve(Some(engine), DeviceChoice::Cuda).unwrap_err().to_string();
            assert!(refused.contains("--device flex") && !refused.contains('\n'), "{refused}");
        }
    }

    #[test]
    fn under_ci_the_default_build_has_xnnpack() {
        // `.ci/run` installs libxnnpack-dev and libpthreadpool-dev before building.
        if std::env::var_os("CI").is_some() && cfg!(feature = "xnnpack") {
            assert!(xnnpack_built(), "CI is set but this build found no XNNPACK: install libxnnpack-dev and libpthreadpool-dev");
        }
    }

    #[cfg(feature = "exported-graphs")]
    #[test]
    fn the_parallel_threshold_is_millions_of_multiply_adds_or_a_one_line_refusal() {
        assert_eq!(parse_parallel_min_mfma(" 32 ").ok(), Some(32e6));
        assert_eq!(parse_parallel_min_mfma("0").ok(), Some(0.0));
        for bad in ["", "-1", "NaN", "inf", "lots"] {
            let err = parse_parallel_min_mfma(bad).expect_err(bad).to_string();
            assert!(err.contains(PARALLEL_MIN_MFMA_ENV) && !err.contains('\n'), "{err}");
        }
    }
}
