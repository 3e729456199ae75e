//! Which engine runs a bundle's halves for inference (`--engine` of `serve`, `infer`, `profile`,
//! `demo` and `bench`): on the CPU, where two or more are built, the fastest of oneDNN (cargo
//! feature `onednn`, [`crate::onednn_engine`]), XNNPACK (feature `xnnpack`,
//! [`crate::xnnpack_engine`]) and tract (feature `tract`, [`crate::tract_engine`]) on each graph,
//! timed at load ([`crate::engine_trial`]); else whichever of them is built, else burn; on a GPU
//! `--device`, burn. Training always runs on burn.

/// The tract release the engine is built on: the exact `=` pin of `tract-onnx` in the workspace's
/// Cargo.toml (change both together).
pub const TRACT_VERSION: &str = "0.23.9";

/// The XNNPACK the engine links: Debian 12's `libxnnpack0` snapshot (`/usr/include/xnnpack.h`).
pub const XNNPACK_VERSION: &str = "0.0~git20220216 (Debian 12)";

/// The oneDNN the engine links: Debian 12's `libdnnl-dev` (`/usr/include/oneapi/dnnl/dnnl.h`).
pub const ONEDNN_VERSION: &str = "2.6.3 (Debian 12)";

/// Multiply-adds per sample from which an exported graph (tract's or XNNPACK's) runs on all
/// `--threads` rather than on the calling thread: about 1 ms of work on one core here (38
/// GFMA/s), where waking the pool's other thread (~0.3 ms) costs less than the second core
/// saves. The compact network's graphs are below (4–20 MFMA), ResNet-50's far above (0.4–4.1
/// GFMA: docs/engines.md).
pub const PARALLEL_MIN_FMA: f64 = 32e6;

/// Environment variable that moves [`PARALLEL_MIN_FMA`] (in millions; 0: every graph on all
/// threads), for a phone or server whose cores wake faster or slower than this host's.
pub const PARALLEL_MIN_MFMA_ENV: &str = "BOTTLENET_PARALLEL_MIN_MFMA";

/// Environment variable that turns the oneDNN engine's Winograd layers off (`off`) or on (`on`,
/// the default): with `off` every convolution is oneDNN's direct one (docs/engines.md,
/// "Winograd convolutions").
pub const WINOGRAD_ENV: &str = "BOTTLENET_WINOGRAD";

/// Whether the oneDNN engine may plan Winograd layers ([`WINOGRAD_ENV`]).
#[cfg(feature = "onednn")]
pub fn winograd_allowed() -> bottlenet_runtime::Result<bool> {
    std::env::var(WINOGRAD_ENV).map_or(Ok(true), |text| parse_winograd(&text))
}

#[cfg(feature = "onednn")]
fn parse_winograd(text: &str) -> bottlenet_runtime::Result<bool> {
    match text.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(bottlenet_runtime::Error::Config(format!("{WINOGRAD_ENV} must be on or off (off: every oneDNN convolution direct), got '{text}'"))),
    }
}

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
    /// Every exported-graph engine built in (oneDNN, XNNPACK, tract) plans every exported graph,
    /// each is timed at load, and the fastest runs it (the default on `--device flex` where two
    /// or more are built).
    Auto,
    /// oneDNN on the CPU: the exported ONNX graphs as oneDNN primitives in the blocked layouts
    /// its kernels choose, ReLU and residual sums fused (needs Debian's libdnnl-dev at build time).
    Onednn,
    /// XNNPACK on the CPU: the exported ONNX graphs as NHWC operators (needs Debian's
    /// libxnnpack-dev and libpthreadpool-dev at build time).
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

/// Whether this binary can run oneDNN: built with the feature, and the library found.
pub fn onednn_built() -> bool {
    cfg!(feature = "onednn") && bottlenet_onednn::linked()
}

/// The exported-graph engines this binary can run, in the order `--engine auto` tries them
/// (a tie keeps the earlier).
pub fn exported_engines() -> Vec<Engine> {
    [(Engine::Onednn, onednn_built()), (Engine::Xnnpack, xnnpack_built()), (Engine::Tract, cfg!(feature = "tract"))]
        .into_iter()
        .filter_map(|(engine, built)| built.then_some(engine))
        .collect()
}

impl Engine {
    /// `requested`, else on the CPU the fastest exported-graph engine per graph where two or more
    /// are built in (`auto`), else the one built in, and burn on any other device. The CPU engines
    /// are refused in one line with a GPU device or where they are not built in.
    pub fn resolve(requested: Option<Engine>, device: bottlenet_model::DeviceChoice) -> anyhow::Result<Engine> {
        let on_cpu = device == bottlenet_model::DeviceChoice::Flex;
        let built = exported_engines();
        match requested {
            Some(engine @ (Engine::Auto | Engine::Onednn | Engine::Tract | Engine::Xnnpack)) if !on_cpu => {
                anyhow::bail!("--engine {engine} runs on the CPU only; pass --device flex with it, or --engine burn to run on {device}")
            }
            Some(Engine::Tract) if !cfg!(feature = "tract") => {
                anyhow::bail!("--engine tract is not compiled into this binary; rebuild with `--features tract` or pass --engine burn")
            }
            Some(Engine::Xnnpack) if !xnnpack_built() => {
                anyhow::bail!("--engine xnnpack is not in this binary: install Debian's libxnnpack-dev and libpthreadpool-dev and rebuild (feature `xnnpack`), or pass --engine {}", built.first().copied().unwrap_or(Engine::Burn))
            }
            Some(Engine::Onednn) if !onednn_built() => {
                anyhow::bail!("--engine onednn is not in this binary: install Debian's libdnnl-dev and rebuild (feature `onednn`), or pass --engine {}", built.first().copied().unwrap_or(Engine::Burn))
            }
            Some(Engine::Auto) if built.len() < 2 => {
                anyhow::bail!("--engine auto times the CPU engines against each other and this binary has {}: pass --engine {} (oneDNN needs Debian's libdnnl-dev, XNNPACK libxnnpack-dev and libpthreadpool-dev, at build time)", built.len(), built.first().copied().unwrap_or(Engine::Burn))
            }
            Some(engine) => Ok(engine),
            None if on_cpu && built.len() >= 2 => Ok(Engine::Auto),
            None if on_cpu => Ok(built.first().copied().unwrap_or(Engine::Burn)),
            None => Ok(Engine::Burn),
        }
    }

    /// How reports and logs name it.
    pub fn describe(self) -> String {
        let small = format!("graphs under {:.0} MFMA on one thread", PARALLEL_MIN_FMA / 1e6);
        match self {
            Engine::Auto => {
                let names: Vec<String> = exported_engines().into_iter().map(Engine::describe_version).collect();
                format!("the fastest of {} on each graph, timed at load (exported ONNX halves, BatchNorm folded; {small})", names.join(", "))
            }
            Engine::Onednn => format!("oneDNN {ONEDNN_VERSION} (exported ONNX halves, BatchNorm folded, ReLU and residual sums fused, blocked layouts; {small})"),
            Engine::Xnnpack => format!("XNNPACK {XNNPACK_VERSION} (exported ONNX halves, BatchNorm folded, NHWC; {small})"),
            Engine::Tract => format!("tract {TRACT_VERSION} (exported ONNX halves, BatchNorm folded; {small})"),
            Engine::Burn => "burn".to_string(),
        }
    }

    /// The engine's name and the release it is built on.
    fn describe_version(self) -> String {
        match self {
            Engine::Onednn => format!("oneDNN {ONEDNN_VERSION}"),
            Engine::Xnnpack => format!("XNNPACK {XNNPACK_VERSION}"),
            Engine::Tract => format!("tract {TRACT_VERSION}"),
            Engine::Auto | Engine::Burn => self.to_string(),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Auto => "auto",
            Engine::Onednn => "onednn",
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
        let built = exported_engines();
        let expected = match built.as_slice() {
            [] => Engine::Burn,
            [only] => *only,
            _ => Engine::Auto,
        };
        assert_eq!(cpu, expected);
        assert_eq!(built.contains(&Engine::Tract), cfg!(feature = "tract"));
        assert_eq!(built.contains(&Engine::Onednn), onednn_built());
        assert_eq!(Engine::resolve(None, DeviceChoice::Wgpu).unwrap(), Engine::Burn);
        assert_eq!(Engine::resolve(Some(Engine::Burn), DeviceChoice::Flex).unwrap(), Engine::Burn);
        for engine in [Engine::Auto, Engine::Onednn, Engine::Tract, Engine::Xnnpack] {
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

    #[test]
    fn an_engine_not_built_in_is_refused_in_one_line_that_names_the_package() {
        for (engine, built, package) in [(Engine::Onednn, onednn_built(), "libdnnl-dev"), (Engine::Xnnpack, xnnpack_built(), "libxnnpack-dev")] {
            let resolved = Engine::resolve(Some(engine), DeviceChoice::Flex);
            if built {
                assert_eq!(resolved.unwrap(), engine);
            } else {
                let refused = resolved.unwrap_err().to_string();
                assert!(refused.contains(package) && !refused.contains('\n'), "{refused}");
            }
        }
    }

    #[test]
    fn under_ci_the_default_build_has_onednn() {
        // `.ci/run` installs libdnnl-dev before building.
        if std::env::var_os("CI").is_some() && cfg!(feature = "onednn") {
            assert!(onednn_built(), "CI is set but this build found no oneDNN: install libdnnl-dev");
        }
    }

    #[cfg(feature = "onednn")]
    #[test]
    fn the_winograd_switch_is_on_or_off_or_a_one_line_refusal() {
        assert_eq!(parse_winograd("on").ok(), Some(true));
        assert_eq!(parse_winograd(" off\n").ok(), Some(false));
        let err = parse_winograd("no").unwrap_err().to_string();
        assert!(err.contains(WINOGRAD_ENV) && err.contains("'no'") && !err.contains('\n'), "{err}");
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
