//! `bottlenet serve`: the cloud half of a bundle over gRPC (paper §3.1), every split's
//! restoration + tail, plus the whole network for the cloud-only path.

use crate::engine::Engine;
use crate::serving::BundleCloud;
use anyhow::{Context, Result};
use bottlenet_model::{Bundle, DeviceChoice};
use bottlenet_runtime::{CloudHalf, Server, ServerConfig, TlsIdentity, shutdown_signal};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// gRPC listening address (loopback by default). Remote phones need a non-loopback address
    /// such as 0.0.0.0:PORT, which is refused without --tls-cert/--tls-key unless --insecure.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// TLS certificate chain (PEM); phones then connect to https://HOST:PORT.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require `authorization: Bearer <token>` on every call; the token is this file's first
    /// line. Calls without it get UNAUTHENTICATED.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve plain text on a non-loopback address (frames, answers and the token travel
    /// unencrypted): only on a private network or behind a TLS-terminating proxy.
    #[arg(long)]
    pub insecure: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Most requests of one split run as one batch.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// Longest a request waits for batch mates (ms).
    #[arg(long, default_value_t = 2)]
    pub max_delay_ms: u64,
    /// Most requests waiting at once; beyond it RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 1024)]
    pub max_queue: usize,
    /// Worker threads running the model (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Do not load the phone halves: the cloud-only path then answers "not available".
    #[arg(long)]
    pub no_cloud_only: bool,
    /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
    /// Inference engine: xnnpack (CPU, the default with --device flex where built), tract (CPU,
    /// the default otherwise) or burn (on --device).
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
}

/// The server configuration of `args`, checked (the address rule included) before any model
/// is loaded.
fn server_config(args: &ServeArgs) -> Result<ServerConfig> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            TlsIdentity::from_files(cert, key)
                .with_context(|| format!("reading the TLS certificate {} and key {}", cert.display(), key.display()))?,
        ),
        _ => None,
    };
    let token = args.token_file.as_deref().map(super::read_token).transpose()?;
    let config = ServerConfig {
        addr: args.addr,
        max_batch: args.max_batch,
        max_delay_ms: args.max_delay_ms,
        max_queue: args.max_queue,
        workers: args.workers,
        metrics_addr: args.metrics_addr,
        token,
        tls,
        insecure: args.insecure,
        ..ServerConfig::default()
    };
    config.validate()?;
    if config.tls.is_none() && !config.addr.ip().is_loopback() {
        tracing::warn!(addr = %config.addr, "serving plain text on a non-loopback address (--insecure)");
    }
    Ok(config)
}

pub fn run(args: ServeArgs) -> Result<()> {
    let config = server_config(&args)?;
    let device = super::device_ready(args.device)?.device()?;
    let engine = Engine::resolve(args.engine, args.device)?;
    let cloud = Bundle::load_cloud(&args.bundle, &device).with_context(|| format!("loading the server halves of {}", args.bundle.display()))?;
    let network = Bundle::load_full(&args.bundle, &device).with_context(|| format!("loading the full network of {}", args.bundle.display()))?;
    let mut model = BundleCloud::new(cloud, device.clone()).with_network(network);
    if !args.no_cloud_only {
        let mobile = Bundle::load_mobile(&args.bundle, &device).with_context(|| format!("loading the phone halves of {} (for cloud-only)", args.bundle.display()))?;
        model = model.with_full(mobile);
    }
    let model = model.with_engine(engine).with_context(|| format!("preparing {} on {engine}", args.bundle.display()))?;
    // What loading freed (exports, planners' copies) goes back to the system before the first
    // request: the binary's malloc settings would keep it resident (bottlenet-heap's docs).
    let released = bottlenet_heap::release_free_memory();
    tracing::debug!(released, "freed load-time memory handed back");
    tracing::info!(engine = %engine.describe(), "inference engine");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let (tls, token_required) = (config.tls.is_some(), config.token.is_some());
    runtime.block_on(async move {
        let name = model.model_name().to_string();
        let splits = model.splits();
        let server = Server::bind(config, vec![Arc::new(model) as Arc<dyn CloudHalf>]).await.context("starting the server")?;
        let scheme = if tls { "https" } else { "http" };
        println!("serving {name} splits {} on {scheme}://{}", splits.join(","), server.local_addr()?);
        tracing::info!(model = %name, tls, token = token_required, "server started");
        if let Some(metrics) = server.metrics_addr()? {
            println!("metrics on http://{metrics}/metrics");
        }
        server.serve(shutdown_signal()).await.context("serving")?;
        eprintln!("server stopped");
        Ok(())
    })
}
