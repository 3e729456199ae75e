//! `bottlenet serve`: the cloud half of a bundle over gRPC (paper §3.1), every split's
//! restoration + tail, plus the whole network for the cloud-only path.

use crate::serving::BundleCloud;
use anyhow::{Context, Result};
use bottlenet_model::{Bundle, DeviceChoice};
use bottlenet_runtime::{CloudHalf, Server, ServerConfig, shutdown_signal};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// gRPC listening address (loopback by default; use 0.0.0.0:PORT to accept remote phones).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
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
}

pub fn run(args: ServeArgs) -> Result<()> {
    let device = super::device_ready(args.device)?.device()?;
    let cloud = Bundle::load_cloud(&args.bundle, &device).with_context(|| format!("loading the server halves of {}", args.bundle.display()))?;
    let network = Bundle::load_full(&args.bundle, &device).with_context(|| format!("loading the full network of {}", args.bundle.display()))?;
    let mut model = BundleCloud::new(cloud, device.clone()).with_network(network);
    if !args.no_cloud_only {
        let mobile = Bundle::load_mobile(&args.bundle, &device).with_context(|| format!("loading the phone halves of {} (for cloud-only)", args.bundle.display()))?;
        model = model.with_full(mobile);
    }
    let config = ServerConfig {
        addr: args.addr,
        max_batch: args.max_batch,
        max_delay_ms: args.max_delay_ms,
        max_queue: args.max_queue,
        workers: args.workers,
        metrics_addr: args.metrics_addr,
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let name = model.model_name().to_string();
        let splits = model.splits();
        let server = Server::bind(config, vec![Arc::new(model) as Arc<dyn CloudHalf>]).await.context("starting the server")?;
        println!("serving {name} splits {} on {}", splits.join(","), server.local_addr()?);
        if let Some(metrics) = server.metrics_addr()? {
            println!("metrics on http://{metrics}/metrics");
        }
        server.serve(shutdown_signal()).await.context("serving")?;
        eprintln!("server stopped");
        Ok(())
    })
}
