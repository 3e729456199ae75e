//! `bottlenet bench`: the figures we compare with other systems, each the median of `--runs` timed
//! runs after warm-up with its spread (10th and 90th percentile, nearest rank):
//! * `codec` — one frame's full round trip (quantize, tile, abbreviated JPEG q20 encode, decode,
//!   untile, dequantize) per feature shape;
//! * `resnet50`, `compact` — batch-1 head (stem … RBj) and tail (RBj+1 … fc) latency at every split
//!   point, and the full forward;
//! * `train` — one SGD step at batch 64 of the compact ResNet without a bottleneck, with the RB1
//!   bottleneck and no codec, and with the codec in the loop (aware); the codec's share of the step
//!   is the difference of the last two;
//! * `server` — requests per second of the gRPC server (shipped bundle, RB1 frames encoded
//!   beforehand) at 1, 8 and 64 concurrent clients, each with its own connection;
//! * `engines` (cargo feature `tract`) — the exported ONNX halves in tract beside burn flex
//!   (`bench_engines.rs`);
//! * `tract-ops` (cargo feature `tract`) — where tract's time goes: every node of the ResNet-50
//!   RB1 plans timed, by kind, with its arithmetic rate, and the graphs' thread scaling
//!   (`bench_tract_ops.rs`);
//! * `ops` — where the time goes: per-operation profile of the ResNet-50 RB1 halves and the
//!   training step's phases (`bench_ops.rs`);
//! * `train-ops` — the training step's convolutions at batch 64, each as its forward, input
//!   gradient and weight gradient (`bench_train_ops.rs`).
//!
//! The model workloads run as `serve` and `infer` do, with BatchNorm folded into the convolutions
//! (`bottlenet_model::fold`); the full forward is also timed unfolded, for the ratio.
//!
//! `scripts/pytorch_bench.py` runs the same workloads in PyTorch (docs/pytorch-comparison.md).

use crate::engine::Engine;
use crate::serving::{BundleCloud, BundlePhone, LoopbackServer};
use anyhow::{Context, Result, bail};
use bottlenet_codec::{CodecKind, CodecParams, Shape, synthetic::relu_like};
use bottlenet_model::{Arch, BottleNet, BottleNetConfig, Bundle, CodecMode, DeviceChoice, FoldBatchNorm, ResNet};
use bottlenet_runtime::proto::InferRequest;
use bottlenet_runtime::proto::bottle_net_client::BottleNetClient;
use bottlenet_runtime::{Image, PhoneHalf, ServerConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[path = "bench_ops.rs"]
mod ops;
#[path = "bench_train_ops.rs"]
mod train_ops;

/// Workload groups, in the order they run.
const GROUPS: [&str; 9] = ["codec", "compact", "resnet50", "train", "server", "ops", "train-ops", "engines", "tract-ops"];

/// The groups that need the `tract` feature; without it, they run only when asked for (and then
/// say how to get it).
const ENGINES: &str = "engines";
const TRACT_OPS: &str = "tract-ops";
const NEED_TRACT: [&str; 2] = [ENGINES, TRACT_OPS];

/// The device generator's seed before a model group draws its random weights and input, so the
/// `resnet50` and `engines` groups time the same network on the same image.
const MODEL_SEED: u64 = 2019;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Timed runs per figure (after warm-up).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Warm-up runs per figure.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Compute device for the model workloads: flex (CPU), cuda or wgpu (cargo features).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
    /// Engine of the server workload: xnnpack or tract (CPU, the default with --device flex) or burn. The
    /// compact, resnet50, train, ops and train-ops groups time burn's modules; engines times all three.
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// Only these groups, comma-separated: codec, compact, resnet50, train, server, ops,
    /// train-ops, engines, tract-ops (engines and tract-ops: cargo feature `tract`).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Bundle the server workload serves.
    #[arg(long, default_value = "models/fashion-compact")]
    pub bundle: PathBuf,
    /// Requests per client in the server workload.
    #[arg(long, default_value_t = 16)]
    pub requests_per_client: usize,
    /// One JSON object (machine, settings, figures) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// With tract-ops: also write the three graphs it times to DIR (mobile/RB1.onnx,
    /// cloud/RB1.onnx, full.onnx, as `bottlenet export` lays them out), so that another engine
    /// runs exactly them (`scripts/pytorch_bench.py --only onnx --onnx-dir DIR`).
    #[arg(long, value_name = "DIR")]
    pub onnx_out: Option<PathBuf>,
}

/// One figure: median and spread of a timed quantity.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub group: String,
    pub name: String,
    /// `us`, `ms` or `req/s`.
    pub unit: String,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub runs: usize,
    /// What else is worth knowing (bytes, share of the codec…).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The whole bench as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub machine: String,
    pub device: String,
    /// What ran the server workload: the engine and its CPU threads or GPU adapter.
    pub engine: String,
    /// What ran the burn groups' convolutions: `onednn` or `burn` on flex.
    pub conv_kernels: String,
    /// What ran the burn groups' training BatchNorm: `fused` or `burn` on flex.
    pub norm_kernels: String,
    pub threads: usize,
    pub runs: usize,
    pub warmup: usize,
    pub figures: Vec<Figure>,
}

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    bottlenet_runtime::percentile(sorted, q)
}

pub(super) fn figure(group: &str, name: String, unit: &str, mut samples: Vec<f64>, note: String) -> Figure {
    samples.sort_by(f64::total_cmp);
    Figure {
        group: group.into(),
        name,
        unit: unit.into(),
        median: nearest_rank(&samples, 0.5),
        p10: nearest_rank(&samples, 0.1),
        p90: nearest_rank(&samples, 0.9),
        runs: samples.len(),
        note,
    }
}

/// Wall times of `runs` calls after `warmup` calls, in `scale` units per second (1e3 = ms).
pub(super) fn time(warmup: usize, runs: usize, scale: f64, mut work: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        work()?;
    }
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            work()?;
            Ok(start.elapsed().as_secs_f64() * scale)
        })
        .collect()
}

pub(super) struct Bench<'a> {
    pub(super) args: &'a BenchArgs,
    pub(super) device: Device,
    /// What the server workload runs on.
    engine: Engine,
    /// Compute threads of every engine (flex's rayon pool, and tract's in `engines`).
    #[cfg(feature = "tract")]
    pub(super) threads: usize,
    figures: Vec<Figure>,
    pub(super) bar: indicatif::ProgressBar,
}

impl Bench<'_> {
    pub(super) fn push(&mut self, f: Figure) {
        self.bar.inc(1);
        if !self.args.json {
            self.bar.suspend(|| println!("{:<9} {:<56} {:>10.2} {:<5} [{:.2} … {:.2}] {}", f.group, f.name, f.median, f.unit, f.p10, f.p90, f.note));
        }
        self.figures.push(f);
    }

    fn codec(&mut self) -> Result<()> {
        let params = CodecParams { codec: CodecKind::JpegAbbrev, quality: 20, bits: 8 };
        for (c, h, w) in [(1, 28, 28), (8, 28, 28), (1, 56, 56), (64, 56, 56)] {
            let tensor = relu_like(Shape::new(c, h, w), 2019);
            let bytes = bottlenet_codec::encode(&tensor, &params)?.len();
            let samples = time(self.args.warmup.max(3), self.args.runs.max(20), 1e6, || {
                let frame = bottlenet_codec::encode(&tensor, &params)?;
                bottlenet_codec::decode(&frame)?;
                Ok(())
            })?;
            self.push(figure("codec", format!("round trip {c}x{h}x{w} jpeg-abbrev q20"), "us", samples, format!("{bytes} B frame")));
        }
        Ok(())
    }

    /// The backbone of `config` and one input image, both drawn from the device's generator seeded
    /// with [`MODEL_SEED`]: the same weights and pixels on every call.
    pub(super) fn seeded_backbone(&self, config: &BottleNetConfig) -> Result<(ResNet, Tensor<4>)> {
        self.device.seed(MODEL_SEED);
        let net = ResNet::new(&config.backbone(), &self.device)?;
        let [c, h, w] = config.input_shape;
        let x = Tensor::<4>::random([1, c, h, w], Distribution::Uniform(0.0, 1.0), &self.device);
        Ok((net, x))
    }

    fn splits(&mut self, group: &str, arch: Arch, input: [usize; 3], classes: usize) -> Result<()> {
        let config = BottleNetConfig::new(arch, input, classes);
        let (backbone, x) = self.seeded_backbone(&config)?;
        let [c, h, w] = input;
        let (warmup, runs) = (self.args.warmup, self.args.runs);
        let samples = time(warmup, runs, 1e3, || {
            backbone.forward(x.clone())?.into_data();
            Ok(())
        })?;
        let unfolded = figure(group, format!("{arch} full forward {c}x{h}x{w} batch 1, BN unfolded"), "ms", samples, String::new());
        let unfolded_median = unfolded.median;
        self.push(unfolded);
        let net = backbone.fold_batch_norms();
        let samples = time(warmup, runs, 1e3, || {
            net.forward(x.clone())?.into_data();
            Ok(())
        })?;
        let folded = figure(group, format!("{arch} full forward {c}x{h}x{w} batch 1"), "ms", samples, String::new());
        let note = format!("BN folded: {:.2}x the unfolded time", folded.median / unfolded_median);
        self.push(Figure { note, ..folded });
        for j in 1..=net.num_blocks() {
            let z = net.head(x.clone(), j)?;
            let head = time(warmup, runs, 1e3, || {
                net.head(x.clone(), j)?.into_data();
                Ok(())
            })?;
            let tail = time(warmup, runs, 1e3, || {
                net.tail(z.clone(), j)?.into_data();
                Ok(())
            })?;
            let shape = z.dims();
            self.push(figure(group, format!("{arch} RB{j} head"), "ms", head, format!("features {}x{}x{}", shape[1], shape[2], shape[3])));
            self.push(figure(group, format!("{arch} RB{j} tail"), "ms", tail, String::new()));
        }
        Ok(())
    }

    fn train(&mut self) -> Result<()> {
        let device = self.device.clone().autodiff();
        let base = BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10);
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        let labels: Vec<i64> = (0..64).map(|i| i % 10).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [64]), &device);
        let variants = [
            ("no bottleneck", base.clone(), CodecMode::None),
            ("RB1 bottleneck c'=1 s=2, no codec", base.clone().with_split(1, 1, 2), CodecMode::Identity),
            ("RB1 bottleneck c'=1 s=2, aware (codec)", base.with_split(1, 1, 2), CodecMode::Aware),
        ];
        // The three variants take turns, one step each, so a noisy machine slows them alike and
        // the codec's share is read from paired steps (aware − identity of the same round).
        let mut runners = Vec::new();
        for (name, config, mode) in variants {
            device.seed(1);
            let net = BottleNet::new(&config, &device)?;
            // The shipped aware config's optimiser (configs/fashion-rb1-aware.toml): SGD, momentum 0.9,
            // weight decay 5e-4, lr 0.05 (the step time does not depend on the rate).
            let optim = SgdConfig::new()
                .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
                .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
                .init();
            runners.push((name, Some(net), optim, mode, Vec::new()));
        }
        let runs = self.args.runs.clamp(1, 10);
        for round in 0..self.args.warmup + runs {
            for (_, net, optim, mode, samples) in &mut runners {
                let start = Instant::now();
                let model = net.take().context("model")?;
                let loss = loss_fn.forward(model.forward(x.clone(), *mode)?, targets.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                let model = optim.step(0.05, model, grads);
                // Read a weight back so lazy backends finish the step inside the timing.
                model.backbone.conv1.weight.val().into_data();
                *net = Some(model);
                if round >= self.args.warmup {
                    samples.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let mut shares: Vec<f64> = runners[1].4.iter().zip(&runners[2].4).map(|(identity, aware)| 100.0 * (aware - identity) / aware).collect();
        shares.sort_by(f64::total_cmp);
        let mut steps: Vec<Figure> = runners.into_iter().map(|(name, _, _, _, samples)| figure("train", format!("compact step batch 64, {name}"), "ms", samples, String::new())).collect();
        if let Some(aware) = steps.last_mut() {
            aware.note = format!(
                "codec share of the step {:.1}% (median of paired rounds, p10 {:.1}%, p90 {:.1}%)",
                nearest_rank(&shares, 0.5),
                nearest_rank(&shares, 0.1),
                nearest_rank(&shares, 0.9)
            );
        }
        for step in steps {
            self.push(step);
        }
        Ok(())
    }

    fn server(&mut self) -> Result<()> {
        let bundle = &self.args.bundle;
        if !bundle.join(bottlenet_model::MANIFEST_FILE).is_file() {
            bail!("no model bundle at {} (run from the repository root, or pass --bundle DIR)", bundle.display());
        }
        let device = self.device.clone();
        let mobile = Bundle::load_mobile(bundle, &device)?;
        let split = mobile.manifest.splits.first().context("the bundle has no splits")?.name.clone();
        let [c, h, w] = mobile.manifest.input_shape;
        let phone = BundlePhone::new(mobile, device.clone()).with_engine(self.engine)?;
        let model_name = phone.model_name().to_string();
        // 64 distinct frames (random images through the real phone half), encoded beforehand so
        // the figure is the server's alone.
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        let frames: Vec<Vec<u8>> = (0..64)
            .map(|_| {
                let pixels = (0..c * h * w)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng >> 56) as u8
                    })
                    .collect();
                Ok(phone.encode(&split, &Image::new(c, h, w, pixels)?)?)
            })
            .collect::<Result<_>>()?;
        let cloud = BundleCloud::new(Bundle::load_cloud(bundle, &device)?, device).with_engine(self.engine)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
        let (runs, per_client) = (self.args.runs.clamp(1, 5), self.args.requests_per_client.max(1));
        let results = runtime.block_on(async {
            let server = LoopbackServer::start(ServerConfig::default(), cloud).await?;
            let url = server.url.clone();
            let frames = Arc::new(frames);
            let mut out = Vec::new();
            for clients in [1usize, 8, 64] {
                let mut channels = Vec::with_capacity(clients);
                for _ in 0..clients {
                    channels.push(BottleNetClient::connect(url.clone()).await.context("connecting to the bench server")?);
                }
                let mut rates = Vec::with_capacity(runs);
                let mut latencies = Vec::new();
                for round in 0..runs + 1 {
                    let start = Instant::now();
                    let tasks: Vec<_> = channels
                        .iter()
                        .enumerate()
                        .map(|(k, channel)| {
                            let (mut channel, frames, model, split) = (channel.clone(), frames.clone(), model_name.clone(), split.clone());
                            tokio::spawn(async move {
                                let mut times = Vec::with_capacity(per_client);
                                for i in 0..per_client {
                                    let frame = frames[(k * per_client + i) % frames.len()].clone();
                                    let t = Instant::now();
                                    let request = InferRequest { model: model.clone(), split: split.clone(), frame, request_id: i as u64, top_k: 1 };
                                    channel.infer(request).await?;
                                    times.push(t.elapsed().as_secs_f64() * 1e3);
                                }
                                anyhow::Ok(times)
                            })
                        })
                        .collect();
                    let mut round_latencies = Vec::new();
                    for task in tasks {
                        round_latencies.extend(task.await.context("a bench client failed")??);
                    }
                    let rate = (clients * per_client) as f64 / start.elapsed().as_secs_f64();
                    // Round 0 warms up connections and the batcher.
                    if round > 0 {
                        rates.push(rate);
                        latencies.extend(round_latencies);
                    }
                }
                latencies.sort_by(f64::total_cmp);
                out.push((clients, rates, latencies));
            }
            server.stop().await.context("the bench server stopped with an error")?;
            anyhow::Ok(out)
        })?;
        for (clients, rates, latencies) in results {
            let note = format!(
                "{} requests/round; latency p50 {:.2} ms p95 {:.2} ms",
                clients * per_client,
                nearest_rank(&latencies, 0.5),
                nearest_rank(&latencies, 0.95)
            );
            self.push(figure("server", format!("throughput, {clients} concurrent clients, {split} frames"), "req/s", rates, note));
        }
        Ok(())
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(unknown) = args.only.iter().find(|g| !GROUPS.contains(&g.as_str())) {
        bail!("unknown bench group {unknown:?}; expected some of: {}", GROUPS.join(", "));
    }
    let with_engines = cfg!(feature = "tract");
    if let Some(group) = args.only.iter().find(|g| !with_engines && NEED_TRACT.contains(&g.as_str())) {
        bail!("bench group {group} needs the tract engine; rebuild with `cargo build --release -p bottlenet-cli --features tract`");
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("setting the compute thread count")?;
    let device = args.device.device()?;
    let groups: Vec<&str> = GROUPS
        .iter()
        .copied()
        .filter(|g| if args.only.is_empty() { with_engines || !NEED_TRACT.contains(g) } else { args.only.iter().any(|o| o == g) })
        .collect();
    if let Some(dir) = &args.onnx_out
        && !groups.contains(&TRACT_OPS)
    {
        bail!("--onnx-out {} writes the graphs of the tract-ops group, which this run does not include; add --only tract-ops", dir.display());
    }
    let counts = |g: &str| match g {
        "codec" => 4,
        "compact" => 2 + 2 * Arch::Compact.num_blocks(),
        "resnet50" => 2 + 2 * Arch::ResNet50.num_blocks(),
        "train" => 3,
        "ops" => 40,
        // Eight conv shapes × three primitives, then four totals.
        "train-ops" => 28,
        // Two networks × (phone half, server half, full) × (flex, tract).
        ENGINES => 12,
        // Three graphs × (1 thread, all threads, every node timed, and ≈ 15 kinds of node).
        TRACT_OPS => 54,
        _ => 3,
    };
    let engine_choice = Engine::resolve(args.engine, args.device)?;
    let engine = super::engine_name(args.device, engine_choice, threads);
    // What ran the burn groups' convolutions on flex (a GPU device runs its own).
    let (conv_kernels, norm_kernels) = if args.device == DeviceChoice::Flex {
        (bottlenet_model::conv_kernels().name(), bottlenet_model::norm_kernels().name())
    } else {
        ("the device's own kernels", "burn")
    };
    let bar = super::progress(args.json, groups.iter().map(|g| counts(g) as u64).sum(), "bench".into());
    if !args.json {
        bar.suspend(|| println!("engine: {engine} (server group; compact, resnet50, train, ops: burn {}, convolutions on {conv_kernels}, training BatchNorm on {norm_kernels}) · median of {} runs [p10 … p90]", args.device, args.runs));
    }
    let mut bench = Bench {
        args: &args,
        device,
        engine: engine_choice,
        #[cfg(feature = "tract")]
        threads,
        figures: Vec::new(),
        bar,
    };
    for group in &groups {
        match *group {
            "codec" => bench.codec()?,
            "compact" => bench.splits("compact", Arch::Compact, [1, 28, 28], 10)?,
            "resnet50" => bench.splits("resnet50", Arch::ResNet50, [3, 224, 224], 1000)?,
            "train" => bench.train()?,
            "ops" => bench.ops()?,
            "train-ops" => bench.train_ops()?,
            "server" => bench.server()?,
            #[cfg(feature = "tract")]
            ENGINES => bench.engines()?,
            #[cfg(feature = "tract")]
            TRACT_OPS => bench.tract_ops()?,
            other => bail!("bench group {other} is not in this build; rebuild with `--features tract`"),
        }
    }
    bench.bar.finish_and_clear();
    if args.json {
        let report = BenchReport { machine: super::profile::cpu_name(), device: args.device.to_string(), engine, conv_kernels: conv_kernels.to_string(), norm_kernels: norm_kernels.to_string(), threads, runs: args.runs, warmup: args.warmup, figures: bench.figures };
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
