//! Which engine runs a bundle's halves for inference (`--engine` of `serve`, `infer`, `profile`,
//! `demo` and `bench`): tract on the CPU by default where the build has it (cargo feature
//! `tract`, [`crate::tract_engine`]), else burn on `--device`. Training always runs on burn.

/// The tract release the engine is built on: the exact `=` pin of `tract-onnx` in the workspace's
/// Cargo.toml (change both together).
pub const TRACT_VERSION: &str = "0.23.9";

/// Multiply-adds per sample from which a tract graph's matrix products run on rayon's pool
/// rather than on the calling thread: about 1 ms of work on one core here (38 GFMA/s), where
/// the pool's wake-up (~0.3 ms) is less than what the second core saves. The compact network's
/// graphs are below (4–20 MFMA), ResNet-50's far above (0.4–3.7 GFMA, 1.4–1.8× faster on two
/// threads: docs/engines.md).
pub const TRACT_PARALLEL_MIN_FMA: f64 = 32e6;

/// Which engine runs a bundle's halves for inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// tract on the CPU: the exported ONNX graphs (the default on `--device flex`).
    Tract,
    /// burn on `--device` (flex, wgpu, cuda, ndarray): the modules as trained.
    Burn,
}

impl Engine {
    /// `requested`, else tract on the CPU (flex) and burn on any other device. tract runs only on
    /// the CPU, so `--engine tract` with a GPU device is refused in one line.
    pub fn resolve(requested: Option<Engine>, device: bottlenet_model::DeviceChoice) -> anyhow::Result<Engine> {
        let on_cpu = device == bottlenet_model::DeviceChoice::Flex;
        match requested {
            Some(Engine::Tract) if !on_cpu => {
                anyhow::bail!("--engine tract runs on the CPU only; pass --device flex with it, or --engine burn to run on {device}")
            }
            Some(Engine::Tract) if !cfg!(feature = "tract") => {
                anyhow::bail!("--engine tract is not compiled into this binary; rebuild with `--features tract` or pass --engine burn")
            }
            Some(engine) => Ok(engine),
            None if on_cpu && cfg!(feature = "tract") => Ok(Engine::Tract),
            None => Ok(Engine::Burn),
        }
    }

    /// How reports and logs name it.
    pub fn describe(self) -> String {
        match self {
            Engine::Tract => format!(
                "tract {TRACT_VERSION} (exported ONNX halves, BatchNorm folded; graphs under {:.0} MFMA on one thread)",
                TRACT_PARALLEL_MIN_FMA / 1e6
            ),
            Engine::Burn => "burn".to_string(),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
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
    fn the_cpu_defaults_to_tract_where_built_and_a_gpu_to_burn() {
        let cpu = Engine::resolve(None, DeviceChoice::Flex).unwrap();
        assert_eq!(cpu, if cfg!(feature = "tract") { Engine::Tract } else { Engine::Burn });
        assert_eq!(Engine::resolve(None, DeviceChoice::Wgpu).unwrap(), Engine::Burn);
        assert_eq!(Engine::resolve(Some(Engine::Burn), DeviceChoice::Flex).unwrap(), Engine::Burn);
        let refused = Engine::resolve(Some(Engine::Tract), DeviceChoice::Cuda).unwrap_err().to_string();
        assert!(refused.contains("--device flex") && !refused.contains('\n'), "{refused}");
    }
}
