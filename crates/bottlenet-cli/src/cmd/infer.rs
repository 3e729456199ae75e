//! `bottlenet infer`: the phone half of a bundle against a running server, over the dataset's
//! test images; prints accuracy, bytes sent, latency percentiles and which path served how many.

use crate::engine::Engine;
use crate::record::SavingPhone;
use crate::serving::BundlePhone;
use crate::slower_phone::SlowerPhone;
use anyhow::{Context, Result, anyhow, bail};
use bottlenet_data::Augment;
use bottlenet_model::{Bundle, DeviceChoice};
use bottlenet_runtime::{Client, ClientOptions, ClientTls, Image, PhoneHalf, SplitMode, Summary};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct InferArgs {
    /// Server URL, e.g. http://127.0.0.1:50051, or https://HOST:PORT for a server with TLS.
    #[arg(long)]
    pub server: String,
    /// The CA certificate (PEM) that signed the server's TLS certificate (its own certificate,
    /// when self-signed); needs an https:// URL. Without it an https:// server is checked
    /// against the system's roots.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Send `authorization: Bearer <token>`, the token being this file's first line (the file
    /// given to `serve --token-file`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Model bundle folder (the phone's halves).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Path: a split (RBj), cloud-only, mobile-only, or auto (Algorithm 1 from --results and the
    /// two profiles, re-chosen during the run from the measured up-link and the server's load,
    /// with hysteresis); default: the bundle's first split.
    #[arg(long)]
    pub split: Option<String>,
    /// The selection phase's results file (search merge's results.json): Algorithm 1's input with
    /// --split auto, and the cloud-only JPEG quality it was measured at.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// With --split auto: the phone's profile.
    #[arg(long)]
    pub mobile_profile: Option<PathBuf>,
    /// With --split auto: the server's profile.
    #[arg(long)]
    pub cloud_profile: Option<PathBuf>,
    /// The declared up-link (3g, 4g, wifi): with --split auto the rate the choice starts
    /// from; it moves only with transfers long enough to time (a small frame's time is the
    /// round trip, not the link).
    #[arg(long, default_value = "wifi")]
    pub network: bottlenet_partition::NetworkPreset,
    /// How images travel: stream (one long-lived stream, one small message per image) or
    /// unary (one request per image).
    #[arg(long, default_value = "stream", value_parser = ["stream", "unary"])]
    pub transport: String,
    /// With --split auto: latency or energy.
    #[arg(long, default_value = "latency")]
    pub target: bottlenet_partition::Target,
    /// At most this many test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Classify these image files (JPEG or PNG, any size) instead of the test set: each is
    /// resized and centre-cropped as the bundle's training data was, then sent over the chosen
    /// path; prints the top-k classes per file and what was sent.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// Dataset path (default resolution otherwise).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// JPEG quality of the input image on the cloud-only path; default: the quality --results
    /// measured cloud-only at, else 90.
    #[arg(long)]
    pub input_quality: Option<u8>,
    /// Classes returned per answer.
    #[arg(long, default_value_t = 5)]
    pub top_k: u32,
    /// Write every payload sent to the server into this folder, byte for byte: the wire frame of
    /// each split request (`000000-RB1.bnf`, …, numbered in sending order; `frame inspect` reads
    /// them), the input JPEG of each cloud-only one.
    #[arg(long, value_name = "DIR")]
    pub save_frames: Option<PathBuf>,
    /// Write one JSON line per image to this file (index, Unix time in ms, the path that
    /// answered, bytes, fallback, phone / upload / server / total ms): which path served each
    /// image, so a run of `--split auto` shows when it switched. Written to FILE.tmp, renamed
    /// at the end.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Send an image every MS milliseconds, like a camera's frame interval (an image that is
    /// late goes at once, the next one MS after it); default: each as soon as the last answered.
    #[arg(long, value_name = "MS")]
    pub every_ms: Option<u64>,
    /// With --split auto: probe the up-link every MS milliseconds (four empty and four padded
    /// status calls, the padding sized for 10 ms on the link at the current estimate), so a
    /// link that became faster is seen while only small frames are sent; 0: never.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub uplink_probe_ms: u64,
    /// Emulate a phone K times slower than this machine: every phone computation (head,
    /// encode, the whole network) waits until K× its measured time has passed. Answers and
    /// bytes are unchanged. Pair it with a mobile profile whose times are K× the measured ones.
    #[arg(long, value_name = "K")]
    pub emulate_slower_phone: Option<f64>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
    /// Inference engine: xnnpack (CPU, the default with --device flex where built), tract (CPU,
    /// the default otherwise) or burn (on --device).
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
}

/// Algorithm 1 as a run-time policy (paper §3.4): the candidates' costs from the results and
/// profiles, re-selection with the re-selector's default hysteresis.
fn algorithm1(args: &InferArgs) -> Result<bottlenet_runtime::Algorithm1> {
    use bottlenet_partition::{CandidateCosts, Network, Profile, ReselectConfig, Reselector, TrainingResults};
    let need = |p: &Option<PathBuf>, flag: &str| p.clone().with_context(|| format!("--split auto needs {flag}"));
    let results = TrainingResults::load(need(&args.results, "--results")?)?;
    let mobile = Profile::load(need(&args.mobile_profile, "--mobile-profile")?)?;
    let cloud = Profile::load(need(&args.cloud_profile, "--cloud-profile")?)?;
    let power = mobile.power_w.unwrap_or(1.3);
    let costs = CandidateCosts::join(&results, &mobile, &cloud)?;
    let config = ReselectConfig::new(args.target, power, results.baseline_accuracy, 2.0);
    Ok(bottlenet_runtime::Algorithm1::new(Reselector::new(costs, Network::preset(args.network), config)?))
}

/// TLS and the token of `args`, checked before any model is loaded.
fn connection(args: &InferArgs, options: &mut ClientOptions) -> Result<()> {
    if let Some(ca) = &args.ca {
        if !args.server.starts_with("https://") {
            bail!("--ca needs an https:// server URL, got {}", args.server);
        }
        let ca_pem = std::fs::read(ca).with_context(|| format!("reading the CA certificate {}", ca.display()))?;
        options.tls = Some(ClientTls { ca_pem: Some(ca_pem), domain: None });
    }
    options.token = args.token_file.as_deref().map(super::read_token).transpose()?;
    Ok(())
}

/// A refused token becomes one line that says which flag fixes it; the phone never answers
/// alone for it.
fn explain(err: bottlenet_runtime::Error, server: &str, doing: String) -> anyhow::Error {
    match err {
        bottlenet_runtime::Error::Unauthenticated(why) => {
            anyhow!("{server} refused the call ({why}): pass the token the server was started with as --token-file FILE")
        }
        other => anyhow::Error::new(other).context(doing),
    }
}

pub fn run(args: InferArgs) -> Result<()> {
    // Connection flags and the cloud-only quality are checked before any model loads.
    let mut options = client_options(&args)?;
    if let Some(factor) = args.emulate_slower_phone {
        if !(factor.is_finite() && factor >= 1.0) {
            bail!("--emulate-slower-phone must be a number >= 1 (how many times slower than this machine), got {factor}");
        }
    }
    if args.every_ms == Some(0) {
        bail!("--every-ms must be at least 1 (or leave it out to send each image as soon as the last answered)");
    }
    let device = super::device_ready(args.device)?.device()?;
    let engine = Engine::resolve(args.engine, args.device)?;
    let mobile = Bundle::load_mobile(&args.bundle, &device).with_context(|| format!("loading the phone halves of {}", args.bundle.display()))?;
    let manifest = mobile.manifest.clone();
    // The server halves too, so the phone can answer alone (mobile-only, and fallback).
    let cloud = Bundle::load_cloud(&args.bundle, &device).with_context(|| format!("loading {} for the mobile-only path", args.bundle.display()))?;
    let network = Bundle::load_full(&args.bundle, &device).with_context(|| format!("loading the full network of {}", args.bundle.display()))?;
    let phone = BundlePhone::new(mobile, device).with_full(cloud).with_network(network).with_engine(engine).with_context(|| format!("preparing {} on {engine}", args.bundle.display()))?;
    // What loading freed (exports, planners' copies) goes back to the system before the first
    // request: the binary's malloc settings would keep it resident (bottlenet-heap's docs).
    let released = bottlenet_heap::release_free_memory();
    tracing::debug!(released, "freed load-time memory handed back");
    tracing::info!(engine = %engine.describe(), "inference engine");
    let mode = match args.split.as_deref() {
        Some(bottlenet_runtime::CLOUD_ONLY) => SplitMode::CloudOnly,
        Some(bottlenet_runtime::MOBILE_ONLY) => SplitMode::MobileOnly,
        Some("auto") => SplitMode::Auto(Box::new(algorithm1(&args)?)),
        Some(s) => {
            let j = super::parse_split(s)?;
            SplitMode::Fixed(manifest.entry(j).with_context(|| format!("bundle has no split RB{j}; it has {:?}", phone.splits()))?.name.clone())
        }
        None => SplitMode::Fixed(phone.splits().into_iter().next().context("bundle has no splits")?),
    };
    let phone: Arc<dyn PhoneHalf> = match &args.save_frames {
        Some(dir) => Arc::new(SavingPhone::new(phone, dir).with_context(|| format!("--save-frames: cannot create {}", dir.display()))?),
        None => Arc::new(phone),
    };
    let phone: Arc<dyn PhoneHalf> = match args.emulate_slower_phone {
        Some(factor) => Arc::new(SlowerPhone::new(phone, factor)),
        None => phone,
    };
    if !args.images.is_empty() {
        options.mode = mode;
        return classify_files(&args, phone, options, &manifest);
    }
    let (data, _) = super::open_bundle_data(args.data.as_deref(), &manifest)?;
    let test = data.test;
    let total = args.limit.unwrap_or(test.len()).min(test.len());
    options.mode = mode;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let client = Client::connect(&args.server, phone, options)
            .await
            .map_err(|e| explain(e, &args.server, format!("connecting to {}", args.server)))?;
        let bar = super::progress(args.json, total as u64, "infer".into());
        let mut summary = Summary::new();
        let mut log = args.log.as_deref().map(AnswerLog::create).transpose()?;
        let mut camera = args.every_ms.map(|ms| {
            let mut interval = tokio::time::interval(std::time::Duration::from_millis(ms));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        for i in 0..total {
            if let Some(camera) = &mut camera {
                camera.tick().await;
            }
            let raw = test.raw(i, Augment::Eval)?;
            let image = chw(&raw.image)?;
            let answer = client.infer(&image).await.map_err(|e| explain(e, &args.server, format!("image {i}")))?;
            summary.record(&answer, Some(raw.label as usize));
            if let Some(log) = &mut log {
                log.write(i, &answer)?;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        if let Some(log) = log {
            log.finish()?;
        }
        summary.record_uplink_probes(client.uplink_probe_stats());
        anyhow::Ok(summary.report())
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let accuracy = report.accuracy.map_or("n/a".to_string(), |a| format!("{:.2}%", 100.0 * a));
        println!(
            "{} images: top-1 {accuracy}, mean {:.1} B sent, latency mean {:.2} ms (phone {:.2} + upload {:.2} + server {:.2}) p50 {:.2} ms p95 {:.2} ms p99 {:.2} ms, {} fallbacks ({} server errors)",
            report.requests,
            report.mean_bytes,
            report.mean_ms,
            report.mean_phone_ms,
            report.mean_upload_ms,
            report.mean_server_ms,
            report.p50_ms,
            report.p95_ms,
            report.p99_ms,
            report.fallbacks,
            report.server_errors
        );
        for (path, n) in &report.by_path {
            println!("  {path}: {n}");
        }
        for (cause, n) in &report.fallback_causes {
            println!("  fell back ({cause}): {n}");
        }
        if report.uplink_probes.probes > 0 {
            println!("  up-link probes: {} ({} B of padding)", report.uplink_probes.probes, report.uplink_probes.padding_bytes);
        }
    }
    Ok(())
}

/// The client's options but the path: TLS and token, top-k, and the cloud-only input quality
/// (`--input-quality`, else the quality `--results` measured cloud-only at, else 90).
fn client_options(args: &InferArgs) -> Result<ClientOptions> {
    let mut options = ClientOptions::new(SplitMode::MobileOnly);
    connection(args, &mut options)?;
    options.top_k = args.top_k;
    if args.transport == "unary" {
        options.transport = bottlenet_runtime::Transport::Unary;
    }
    options.uplink_probe_interval = std::time::Duration::from_millis(args.uplink_probe_ms);
    options.declared_uplink_mbps = Some(bottlenet_partition::Network::preset(args.network).uplink_mbps);
    // The bytes per image that the up-link estimate counts: payload plus the transport's
    // overhead the cloud profile measured.
    if let Some(path) = &args.cloud_profile {
        options.wire_overhead_bytes = bottlenet_partition::Profile::load(path)?.wire_overhead_bytes.unwrap_or(0.0);
    }
    let measured_quality = match &args.results {
        Some(path) => bottlenet_partition::TrainingResults::load(path)?.cloud_only.quality,
        None => None,
    };
    options.jpeg_quality = args.input_quality.or(measured_quality).unwrap_or(90);
    Ok(options)
}

/// `infer --log FILE`: one JSON line per answered image, written to `FILE.tmp` and renamed to
/// `FILE` when the run ends, so an interrupted run never leaves a half-written log under the
/// name asked for.
struct AnswerLog {
    path: PathBuf,
    partial: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

/// One line of [`AnswerLog`].
#[derive(Debug, Serialize)]
struct LoggedAnswer<'a> {
    image: usize,
    /// When the answer arrived, ms since the Unix epoch (to line up with events outside the
    /// phone, such as a change of the link's rate).
    unix_ms: f64,
    served_by: &'a str,
    bytes: usize,
    wire_bytes: f64,
    fell_back: bool,
    phone_ms: f64,
    upload_ms: f64,
    server_ms: f64,
    /// The server's smoothed queue + service time of the path, reported with the answer: the
    /// `TC` that `--split auto` was told.
    reported_server_ms: f64,
    total_ms: f64,
}

impl AnswerLog {
    fn create(path: &std::path::Path) -> Result<Self> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".tmp");
        let partial = PathBuf::from(partial);
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("--log: cannot create {}", partial.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            partial,
            out: std::io::BufWriter::new(file),
        })
    }

    fn write(&mut self, image: usize, answer: &bottlenet_runtime::Answer) -> Result<()> {
        use std::io::Write;
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let line = LoggedAnswer {
            image,
            unix_ms,
            served_by: answer.served_by.name(),
            bytes: answer.bytes,
            wire_bytes: answer.wire_bytes,
            fell_back: answer.fell_back,
            phone_ms: answer.tm_ms,
            upload_ms: answer.upload_ms,
            server_ms: answer.tc_ms,
            reported_server_ms: answer.reported_tc_ms,
            total_ms: answer.total_ms,
        };
        serde_json::to_writer(&mut self.out, &line)?;
        writeln!(self.out).with_context(|| format!("--log: writing {}", self.partial.display()))
    }

    fn finish(self) -> Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| anyhow!("--log: writing {}: {}", self.partial.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("--log: writing {}", self.partial.display()))?;
        std::fs::rename(&self.partial, &self.path).with_context(|| {
            format!(
                "--log: renaming {} to {}",
                self.partial.display(),
                self.path.display()
            )
        })
    }
}

/// What `infer --images` reports for one file.
#[derive(Debug, Serialize)]
struct FileAnswer {
    file: PathBuf,
    /// `(class, score)` best first; scores are the server's (or phone's) softmax.
    top_k: Vec<(String, f32)>,
    /// The path that answered: a split, cloud-only or mobile-only.
    served_by: String,
    /// Bytes the phone sent for this image (frame or input JPEG; 0 when it answered alone).
    bytes_sent: usize,
    fell_back: bool,
    total_ms: f64,
}

/// `infer --images`: the user's own photos, prepared as the bundle's training data was.
fn classify_files(args: &InferArgs, phone: Arc<dyn PhoneHalf>, options: ClientOptions, manifest: &bottlenet_model::Manifest) -> Result<()> {
    let [channels, height, width] = manifest.input_shape;
    if height != width {
        bail!("--images needs a bundle with a square input; this one takes {height}×{width}");
    }
    let crop = height as u32;
    let resize = manifest.resize.unwrap_or(crop);
    let images = args
        .images
        .iter()
        .map(|path| {
            let raw = bottlenet_data::load_image_file(path, resize, crop, channels).with_context(|| format!("reading {}", path.display()))?;
            chw(&raw)
        })
        .collect::<Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let answers = runtime.block_on(async {
        let client = Client::connect(&args.server, phone, options)
            .await
            .map_err(|e| explain(e, &args.server, format!("connecting to {}", args.server)))?;
        let mut answers = Vec::with_capacity(images.len());
        for (path, image) in args.images.iter().zip(&images) {
            let answer = client.infer(image).await.map_err(|e| explain(e, &args.server, format!("classifying {}", path.display())))?;
            answers.push(FileAnswer {
                file: path.clone(),
                top_k: answer.top_k.iter().map(|c| (c.label.clone(), c.score)).collect(),
                served_by: answer.served_by.to_string(),
                bytes_sent: answer.bytes,
                fell_back: answer.fell_back,
                total_ms: answer.total_ms,
            });
        }
        anyhow::Ok(answers)
    })?;
    for answer in &answers {
        if args.json {
            println!("{}", serde_json::to_string(answer)?);
        } else {
            let classes: Vec<String> = answer.top_k.iter().map(|(label, score)| format!("{label} {:.1}%", 100.0 * score)).collect();
            let fallback = if answer.fell_back { " (server failed; the phone answered alone)" } else { "" };
            println!("{}: {} — via {}, {} B sent, {:.1} ms{fallback}", answer.file.display(), classes.join(", "), answer.served_by, answer.bytes_sent, answer.total_ms);
        }
    }
    Ok(())
}

/// The dataset image (HWC, channels interleaved) as the runtime's CHW image.
pub fn chw(raw: &bottlenet_data::RawImage) -> Result<Image> {
    Ok(Image::new(raw.channels, raw.height, raw.width, raw.planar())?)
}
