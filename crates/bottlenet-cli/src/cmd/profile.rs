//! `bottlenet profile`: Algorithm 1's profiling phase, measured on this machine. Per split,
//! `TM_j` (head + reduction + quantize + tile + encode) on the phone or `TC_j` (decode + untile +
//! dequantize + restoration + tail) on the server, batch 1, median and p90 after warm-up; plus the
//! cloud-only candidate (JPEG of the input image; the full network on the server) and the
//! mobile-only one (the full network on the phone). `--load K` keeps K inference workers busy
//! beside the measurement, standing for a loaded device. A cloud profile also records the
//! serving stack's fixed cost per request (`request_overhead_ms`) and the transport's bytes per
//! image beyond the payload (`wire_overhead_bytes`, from the kernel's TCP counters of the
//! client's socket), measured with a real client against a loopback server over one stream, TLS
//! on by default; Algorithm 1 adds the first to every path that uses the server and the second
//! to every path that sends.
//!
//! The phone build measures `--role mobile` only and the server build `--role cloud` only; both
//! take the unmodified network from the bundle (`--baseline RUN_DIR` needs the training crate,
//! so only the full build has it).

use anyhow::{Context, Result, bail};
use bottlenet_codec::photo::{ChromaSampling, PhotoJpeg};
use crate::serving::BundlePhone;
#[cfg(feature = "server")]
use crate::serving::{BundleCloud, LoopbackServer};
use crate::engine::Engine;
use bottlenet_data::{Augment, DatasetPair};
use bottlenet_model::{BottleNet, Bundle, CodecMode, DeviceChoice, FoldBatchNorm};
use burn::tensor::{Device, Tensor, TensorData};
use bottlenet_partition::{Profile, ProfileEntry, Role};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Model bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Which half to time: mobile (TM) or cloud (TC).
    #[arg(long)]
    pub role: Role,
    /// Trained unmodified network (a training output folder) for the mobile-only and cloud-only
    /// candidates; default: the bundle's full network.
    #[cfg(feature = "full")]
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Inference threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Concurrent background inference workers standing for a loaded device (Algorithm 1's K).
    #[arg(long, default_value_t = 0)]
    pub load: u32,
    /// Timed runs per candidate (after 3 warm-up runs).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// JPEG quality of the input image on the cloud-only path.
    #[arg(long, default_value_t = 10)]
    pub input_quality: u8,
    /// The phone's compute power in W, recorded in a mobile profile (PM of Algorithm 1).
    #[arg(long)]
    pub mobile_power_w: Option<f64>,
    /// Dataset the sample image comes from (default resolution otherwise).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to write the profile (JSON); printed to stdout otherwise.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
    /// Inference engine: xnnpack (CPU, the default with --device flex where built), tract (CPU,
    /// the default otherwise) or burn (on --device).
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// With --role cloud: the transport's bytes per image beyond the payload, in place of the
    /// one the profile measures itself (a real client on loopback, the kernel's TCP counters of
    /// its socket); e.g. what `scripts/netem.sh` counted at a phone's interface (its rows'
    /// `wire_overhead_bytes`). Algorithm 1 adds it to every path that sends
    /// (TU_j = 8·(D_j + o)/NB).
    #[arg(long, value_name = "BYTES")]
    pub wire_overhead_bytes: Option<f64>,
    /// With --role cloud: measure the real requests (request overhead, wire overhead) over TLS
    /// with a throwaway certificate (on, as a remote phone must use) or in plain text (off).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub wire_tls: String,
}

/// Median and 90th percentile (nearest rank) of `samples` in ms.
fn summarize(name: &str, mut samples: Vec<f64>) -> ProfileEntry {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    ProfileEntry { name: name.to_string(), median_ms: at(0.5), p90_ms: at(0.9), samples: samples.len() as u32 }
}

/// Times `work` `runs` times after 3 warm-up calls.
fn time_ms(runs: usize, mut work: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..3 {
        work()?;
    }
    (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            work()?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// The CPU's model name from /proc/cpuinfo.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| text.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

/// What one profiling pass measures (the `bottlenet profile` flags, less where they come from).
#[derive(Debug, Clone)]
pub struct Measure {
    pub role: Role,
    pub runs: usize,
    pub input_quality: u8,
    pub load: u32,
    pub threads: usize,
    pub mobile_power_w: Option<f64>,
    /// The engine the model runs on (named in the profile's `device`).
    pub device: DeviceChoice,
    /// What runs the halves on `device` (named in the profile's `device` too).
    pub engine: Engine,
    /// A cloud profile's real requests go over TLS (a throwaway certificate), as a remote
    /// phone's must; off: plain text, as on loopback.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub wire_tls: bool,
}

/// The unmodified network: `explicit` (a training output folder), else the bundle's full network.
pub fn baseline_network(bundle: &Path, explicit: Option<&Path>, device: &Device) -> Result<BottleNet> {
    #[cfg(feature = "full")]
    if let Some(dir) = explicit {
        return Ok(bottlenet_train::load_trained(dir, device)?);
    }
    #[cfg(not(feature = "full"))]
    let _ = explicit;
    Bundle::load_full(bundle, device)?.with_context(|| {
        format!("{} has no full network for mobile-only and cloud-only; pass --baseline RUN_DIR (full build) or add one with `bottlenet model add-full`", bundle.display())
    })
}

/// `Ok` when this build measures `role`; else one line naming the build that does.
fn role_built(role: Role) -> Result<()> {
    let built = match role {
        Role::Mobile => cfg!(feature = "phone"),
        Role::Cloud => cfg!(feature = "server"),
    };
    if !built {
        let (name, feature) = if role == Role::Mobile { ("mobile", "phone") } else { ("cloud", "server") };
        bail!("this binary cannot measure --role {name}; build it with `cargo build --release -p bottlenet-cli --no-default-features --features {feature}` (or the default full build)");
    }
    Ok(())
}

/// One sample of `pixels` (normalised, CHW) as a `[1, C, H, W]` tensor.
fn input_tensor(pixels: Vec<f32>, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(pixels, [1, c, h, w]), device)
}

/// Measures one role's profile of every candidate in `bundle` on the first test image of `data`.
pub fn measure(bundle: &Path, baseline: Arc<BottleNet>, data: &DatasetPair, m: &Measure) -> Result<Profile> {
    let device = baseline.device();
    let [channels, height, width] = data.test.input_shape();
    let sample = data.test.get(0, Augment::Eval)?;
    let raw = data.test.raw(0, Augment::Eval)?;
    let image = || input_tensor(sample.pixels.clone(), [channels, height, width], &device);
    if baseline.config().input_shape != [channels, height, width] {
        bail!("baseline expects {:?} inputs, the dataset has {:?}", baseline.config().input_shape, [channels, height, width]);
    }

    // Background load: K workers running the full network until the measurement ends.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..m.load)
        .map(|_| {
            let (stop, model, input) = (stop.clone(), baseline.clone(), image());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = model.forward(input.clone(), CodecMode::None);
                }
            })
        })
        .collect();

    let mut entries = Vec::new();
    // Only a cloud profile measures the request overhead.
    #[cfg_attr(not(feature = "server"), allow(unused_mut))]
    let mut overhead = None;
    #[cfg_attr(not(feature = "server"), allow(unused_mut))]
    let mut wire: Option<WireOverhead> = None;
    // The cloud-only upload: the photo as a phone sends it (colour JPEG 4:2:0; DESIGN §1).
    let input_codec = PhotoJpeg { quality: m.input_quality, sampling: ChromaSampling::Yuv420 };
    let photo = raw.image.planar();
    // The dataset image (HWC) as the runtime's CHW image (what `infer` sends).
    #[cfg_attr(not(any(feature = "phone", feature = "server")), allow(unused_variables))]
    let rt_image = bottlenet_runtime::Image::new(channels, height, width, photo.clone())?;
    let measured = (|| -> Result<()> {
        match m.role {
            #[cfg(feature = "phone")]
            Role::Mobile => {
                // As `infer` runs it: the image checked and normalised, the head on the engine,
                // eq. 1's quantizer, tiling, codec and frame.
                use bottlenet_runtime::PhoneHalf as _;
                let phone = BundlePhone::new(Bundle::load_mobile(bundle, &device)?, device.clone()).with_network(Some((*baseline).clone())).with_engine(m.engine)?;
                for split in phone.splits() {
                    let samples = time_ms(m.runs, || phone.encode(&split, &rt_image).map(drop).map_err(Into::into))?;
                    entries.push(summarize(&split, samples));
                }
                let samples = time_ms(m.runs, || input_codec.encode(channels, height, width, &photo).map(drop).map_err(Into::into))?;
                entries.push(summarize("cloud-only", samples));
                let samples = time_ms(m.runs, || phone.full(&rt_image).map(drop).map_err(Into::into))?;
                entries.push(summarize("mobile-only", samples));
            }
            #[cfg(feature = "server")]
            Role::Cloud => {
                // As the server's workers run it: the frame checked against its split and decoded,
                // the tail on the engine; cloud-only: the photo decoded, the network.
                use bottlenet_runtime::{CloudHalf as _, PhoneHalf as _};
                let phone = BundlePhone::new(Bundle::load_mobile(bundle, &device)?, device.clone()).with_engine(m.engine)?;
                let cloud = BundleCloud::new(Bundle::load_cloud(bundle, &device)?, device.clone()).with_network(Some((*baseline).clone())).with_engine(m.engine)?;
                for split in cloud.splits() {
                    let frame = phone.encode(&split, &rt_image)?;
                    let (Some(shape), Some(params)) = (cloud.feature_shape(&split), cloud.codec_params(&split)) else { bail!("the bundle lacks the server half of {split}") };
                    let spec = bottlenet_codec::FrameSpec { shape, params };
                    let samples = time_ms(m.runs, || {
                        let features = bottlenet_codec::decode_with(&frame, &spec)?;
                        cloud.tail(&split, &[features])?;
                        Ok(())
                    })?;
                    entries.push(summarize(&split, samples));
                }
                let file = input_codec.encode(channels, height, width, &photo)?;
                let samples = time_ms(m.runs, || {
                    let input = cloud.decode_image(&file)?;
                    cloud.full(&[input])?;
                    Ok(())
                })?;
                entries.push(summarize("cloud-only", samples));
                entries.push(ProfileEntry { name: "mobile-only".into(), median_ms: 0.0, p90_ms: 0.0, samples: 0 });
                if let Some(first) = entries.first().filter(|e| e.name.starts_with("RB")) {
                    let (split, tc) = (first.name.clone(), first.median_ms);
                    // The halves just timed serve the real requests (loaded and planned once).
                    let served = serving_overheads(cloud, Arc::new(phone), &rt_image, &split, m.runs, m.wire_tls)?;
                    overhead = Some((served.round_trip_ms - tc).max(0.0));
                    wire = Some(served.wire);
                }
            }
            // The role this build does not hold: refused in one line (run() refuses it earlier).
            #[cfg(not(all(feature = "phone", feature = "server")))]
            other => role_built(other)?,
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    measured?;

    let profile = Profile {
        format: bottlenet_partition::profile::PROFILE_FORMAT,
        device: super::engine_name(m.device, m.engine, m.threads),
        role: m.role,
        threads: m.threads as u32,
        load_level: m.load,
        power_w: if m.role == Role::Mobile { m.mobile_power_w } else { None },
        request_overhead_ms: overhead,
        wire_overhead_bytes: wire.as_ref().and_then(|w| w.bytes_per_image.as_ref().ok().copied()),
        source: format!(
            "bottlenet profile, batch 1, {} runs after 3 warm-up, input colour JPEG 4:2:0 q{}{}{}",
            m.runs,
            m.input_quality,
            if overhead.is_some() { "; request overhead: real client → loopback gRPC server (no batching), median round trip less phone time less TC" } else { "" },
            wire.as_ref().map_or(String::new(), WireOverhead::describe),
        ),
        candidates: entries,
    };
    profile.validate()?;
    Ok(profile)
}

/// Images sent to measure the transport's overhead per image (after the warm-up).
#[cfg(feature = "server")]
const WIRE_IMAGES: usize = 50;

/// The transport's bytes per image beyond the payload, as the phone's socket sent them, or why
/// they could not be read.
#[derive(Debug, Clone)]
pub struct WireOverhead {
    pub bytes_per_image: std::result::Result<f64, String>,
    pub images: usize,
    pub tls: bool,
}

impl WireOverhead {
    /// The profile's `source` note.
    fn describe(&self) -> String {
        let tls = if self.tls { "TLS (throwaway certificate)" } else { "plain text" };
        match &self.bytes_per_image {
            Ok(_) => format!(
                "; wire overhead: measured, the kernel's TCP counters of the client's socket (ss: bytes sent + segments x Ethernet/IP/TCP headers) per image less the payload, {} images over one stream, {tls}",
                self.images
            ),
            Err(why) => format!("; wire overhead: not measured ({why})"),
        }
    }
}

/// What real requests cost beyond the model.
#[cfg(feature = "server")]
struct ServingOverheads {
    /// Median end-to-end time less the phone's own time, ms.
    round_trip_ms: f64,
    wire: WireOverhead,
}

/// A client sends `split` frames of `image` to a loopback gRPC server holding this bundle
/// (batching off: one phone) over one stream, TLS on when `tls`. Each request's end-to-end time
/// less the phone's own time is what the server path cost it (less `TC_j`: the serving stack's
/// fixed cost per request). Around the measured requests the client socket's kernel counters
/// ([`crate::wire_meter`]) give every byte that left it; less the payloads, per image, that is
/// the transport's overhead (issue 14: Algorithm 1's `TU` counts what leaves the interface).
#[cfg(feature = "server")]
fn serving_overheads(cloud: BundleCloud, phone: Arc<dyn bottlenet_runtime::PhoneHalf>, image: &bottlenet_runtime::Image, split: &str, runs: usize, tls: bool) -> Result<ServingOverheads> {
    use bottlenet_runtime::{Client, ClientOptions, ClientTls, CloudHalf as _, ServerConfig, SplitMode, TlsIdentity};
    let mut options = ClientOptions::new(SplitMode::Fixed(split.to_string()));
    let mut config = ServerConfig { max_batch: 1, max_delay_ms: 0, ..ServerConfig::default() };
    if tls {
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).context("making the throwaway TLS certificate")?;
        let cert_pem = key.cert.pem().into_bytes();
        config.tls = Some(TlsIdentity { cert_pem: cert_pem.clone(), key_pem: key.signing_key.serialize_pem().into_bytes() });
        options.tls = Some(ClientTls { ca_pem: Some(cert_pem), domain: None });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        let name = cloud.model_name().to_string();
        let server = LoopbackServer::start(config, cloud).await?;
        let client = Client::connect(&server.url, phone, options).await.with_context(|| format!("connecting to the profiling server for {name}"))?;
        let ask = || async {
            let answer = client.infer(&image).await?;
            if answer.fell_back {
                bail!("the profiling server did not answer; cannot measure the request overhead");
            }
            anyhow::Ok(answer)
        };
        for _ in 0..3 {
            ask().await?;
        }
        let images = runs.max(1).max(WIRE_IMAGES);
        let before = crate::wire_meter::sent_to(server.addr);
        let mut samples = Vec::with_capacity(images);
        let mut payload = 0u64;
        for _ in 0..images {
            let answer = ask().await?;
            samples.push(answer.total_ms - answer.tm_ms);
            payload += answer.bytes as u64;
        }
        let after = crate::wire_meter::sent_to(server.addr);
        server.stop().await.context("the profiling server stopped with an error")?;
        let bytes_per_image = before.and_then(|before| {
            let after = after?;
            let wire = after.wire_bytes().saturating_sub(before.wire_bytes());
            Ok((wire as f64 - payload as f64) / images as f64)
        });
        Ok(ServingOverheads { round_trip_ms: summarize("rpc", samples).median_ms, wire: WireOverhead { bytes_per_image, images, tls } })
    })
}

pub fn run(args: ProfileArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // burn's flex backend computes on rayon's global pool.
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("setting the inference thread count")?;
    role_built(args.role)?;
    let device = super::device_ready(args.device)?.device()?;
    let engine = Engine::resolve(args.engine, args.device)?;
    let (data, _) = super::open_bundle_data(args.data.as_deref(), &Bundle::read_manifest(&args.bundle)?)?;
    #[cfg(feature = "full")]
    let explicit = args.baseline.as_deref();
    #[cfg(not(feature = "full"))]
    let explicit = None;
    // Timed as it serves: BatchNorm folded into the convolutions.
    let baseline = Arc::new(baseline_network(&args.bundle, explicit, &device)?.fold_batch_norms());
    let setup = Measure { role: args.role, runs: args.runs, input_quality: args.input_quality, load: args.load, threads, mobile_power_w: args.mobile_power_w, device: args.device, engine, wire_tls: args.wire_tls == "on" };
    let mut profile = measure(&args.bundle, baseline, &data, &setup)?;
    if let Some(bytes) = args.wire_overhead_bytes {
        if args.role != Role::Cloud {
            bail!("--wire-overhead-bytes belongs to a cloud profile (--role cloud)");
        }
        profile.wire_overhead_bytes = Some(bytes);
        profile.source.push_str("; wire overhead as given (--wire-overhead-bytes, e.g. interface tx bytes per image less the payload, counted at the phone's veth by scripts/netem.sh), in place of the measured one");
        profile.validate()?;
    }
    match &args.out {
        Some(path) => {
            profile.save(path)?;
            eprintln!("profile written to {}", path.display());
        }
        None => println!("{}", serde_json::to_string_pretty(&profile)?),
    }
    for entry in &profile.candidates {
        eprintln!("{:<12} median {:8.3} ms   p90 {:8.3} ms", entry.name, entry.median_ms, entry.p90_ms);
    }
    Ok(())
}
