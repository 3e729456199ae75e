//! A model bundle behind the runtime's [`CloudHalf`](RtCloud) and [`PhoneHalf`](RtPhone) traits:
//! the server holds every split's restoration + tail, the phone every split's head + reduction
//! (paper §3.4). Split names are the manifest's (`RB3`).
//!
//! Cloud-only and mobile-only need the whole network on one side. They run the bundle's unsplit
//! network (`full.bpk`, the trained baseline — the paper's unmodified network) when the bundle has
//! one ([`BundleCloud::with_network`], [`BundlePhone::with_network`]). A bundle that stores only
//! halves falls back to composing the first split's two halves with the real codec round trip
//! between them, i.e. exactly `BottleNet::forward(x, CodecMode::Aware)`, when the side was given
//! the other half too ([`BundleCloud::with_full`], [`BundlePhone::with_full`]); otherwise the path
//! answers with a clear "not available" error.
//!
//! Input images travel on the cloud-only path as the photo a phone's camera stack would send:
//! a standard colour JPEG (YCbCr 4:2:0; grayscale JPEG for 1-channel models, DESIGN §1). The
//! server reads its header and refuses a size other than the bundle's input before decoding.
//!
//! Every method blocks (burn on the CPU); the runtime calls them on worker threads / the blocking
//! pool, never on the reactor.
//!
//! The phone build (cargo feature `phone` alone) compiles the phone side only; the server side
//! and the loopback server need `server`.

use bottlenet_codec::photo::{ChromaSampling, PhotoJpeg};
use bottlenet_codec::{CodecParams, FeatureTensor, Shape};
use bottlenet_model::{BottleNet, CloudBundle, CloudHalf as ModelCloud, CodecMode, FoldBatchNorm, Manifest, MobileBundle, MobileHalf as ModelMobile};
use bottlenet_runtime::{Error, Image, PhoneHalf as RtPhone, Result};
#[cfg(feature = "server")]
use bottlenet_runtime::CloudHalf as RtCloud;
use burn::tensor::{Device, Tensor, TensorData};
use crate::engine::Engine;
#[cfg(feature = "exported-graphs")]
use crate::exported_graph::ExportedGraph;

/// The model name both ends announce: architecture, width, input shape and classes, so a phone
/// and a server loaded from different bundles of one architecture do not pair up by accident.
pub fn model_name(manifest: &Manifest) -> String {
    let [c, h, w] = manifest.input_shape;
    format!("{}-w{}-{c}x{h}x{w}-{}", manifest.arch, manifest.width, manifest.num_classes)
}

fn split_index(manifest: &Manifest, split: &str) -> Option<usize> {
    manifest.splits.iter().find(|e| e.name == split).map(|e| e.split)
}

fn unknown_split(manifest: &Manifest, split: &str) -> Error {
    Error::UnknownSplit { model: model_name(manifest), split: split.to_string() }
}

fn to_host<const D: usize>(x: Tensor<D>) -> Result<Vec<f32>> {
    x.into_data().try_into_vec_as::<f32>().map_err(|e| Error::Model(format!("reading a tensor back to the host: {e:?}")))
}

/// Splits `[n·k]` row-major logits into `n` vectors of `k`.
fn rows(logits: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, k] = logits.dims();
    Ok(to_host(logits)?.chunks(k.max(1)).map(<[f32]>::to_vec).collect())
}

/// Lays samples of one shape end to end, row-major `[n, c, h, w]`.
#[cfg(feature = "server")]
fn flatten(samples: &[FeatureTensor], shape: Shape) -> Result<Vec<f32>> {
    let mut data = Vec::with_capacity(samples.len() * shape.channels * shape.height * shape.width);
    for s in samples {
        if s.shape != shape {
            return Err(Error::InvalidArgument(format!("sample of shape {:?}, expected {shape:?}", s.shape)));
        }
        data.extend_from_slice(&s.data);
    }
    Ok(data)
}

/// Stacks samples of one shape into a `[n, c, h, w]` tensor.
#[cfg(feature = "server")]
fn stack(samples: &[FeatureTensor], shape: Shape, device: &Device) -> Result<Tensor<4>> {
    let data = flatten(samples, shape)?;
    Ok(Tensor::<4>::from_data(TensorData::new(data, [samples.len(), shape.channels, shape.height, shape.width]), device))
}

/// `(p/255 − mean_c) / std_c` per channel (the manifest's normalisation), CHW.
fn normalise(manifest: &Manifest, channels: usize, pixels: &[u8]) -> Result<Vec<f32>> {
    let norm = &manifest.normalization;
    norm.validate(channels).map_err(Error::model)?;
    let plane = pixels.len() / channels.max(1);
    Ok(pixels.iter().enumerate().map(|(i, &p)| (f32::from(p) / 255.0 - norm.mean[i / plane]) / norm.std[i / plane]).collect())
}

fn check_image(manifest: &Manifest, image: &Image) -> Result<()> {
    let [c, h, w] = manifest.input_shape;
    if [image.channels, image.height, image.width] != [c, h, w] || image.pixels.len() != c * h * w {
        return Err(Error::InvalidImage(format!(
            "image is {}×{}×{}, the model takes {c}×{h}×{w}",
            image.channels, image.height, image.width
        )));
    }
    Ok(())
}

/// Head + reduction, codec round trip, restoration + tail: the whole network as trained
/// (`BottleNet::forward(x, CodecMode::Aware)`), on one side.
fn compose(mobile: &ModelMobile, cloud: &ModelCloud, x: Tensor<4>) -> Result<Tensor<2>> {
    let z = mobile.features(x).map_err(Error::model)?;
    let (z, _) = bottlenet_model::codec_straight_through(z, &mobile.config().codec).map_err(Error::model)?;
    cloud.logits(z).map_err(Error::model)
}

/// The unsplit network's logits.
fn run_network(net: &BottleNet, x: Tensor<4>) -> Result<Vec<Vec<f32>>> {
    rows(net.forward(x, CodecMode::None).map_err(Error::model)?)
}

fn not_full(side: &str) -> Error {
    Error::InvalidArgument(format!("not available: this {side} has no full model (it holds only its halves of the bundle)"))
}

/// The server's side of a bundle.
#[cfg(feature = "server")]
#[derive(Debug)]
pub struct BundleCloud {
    name: String,
    class_names: Vec<String>,
    cloud: CloudBundle,
    mobile: Option<MobileBundle>,
    network: Option<BottleNet>,
    device: Device,
    /// The halves and network planned on a CPU engine ([`BundleCloud::with_engine`]); burn runs what is
    /// not in here.
    #[cfg(feature = "exported-graphs")]
    exported: ExportedSide,
}

/// One side's exported graphs on a CPU engine (XNNPACK or tract): a graph per split name, and
/// the unsplit network.
#[cfg(feature = "exported-graphs")]
#[derive(Debug, Default)]
struct ExportedSide {
    halves: std::collections::HashMap<String, ExportedGraph>,
    network: Option<ExportedGraph>,
}

#[cfg(feature = "exported-graphs")]
impl ExportedSide {
    /// Plans `own`'s halves (exported with `export`) on `engine`, then the unsplit network taken
    /// out of `network`. burn's copies are never run once the engine holds the network (a path composed of
    /// two halves needs them only without one), so `own`'s and `other`'s halves are freed before
    /// it is planned: a ResNet-50 side does not hold every weight twice.
    fn plan<H, O>(engine: Engine, own: &mut bottlenet_model::HalfBundle<H>, other: Option<&mut bottlenet_model::HalfBundle<O>>, network: &mut Option<BottleNet>, export: fn(&H) -> bottlenet_model::Result<bottlenet_model::onnx::OnnxModel>) -> Result<Self> {
        let halves = own
            .manifest
            .splits
            .iter()
            .filter_map(|e| own.half(e.split).map(|half| (e.name.clone(), half)))
            .map(|(name, half)| Ok((name, ExportedGraph::load(engine, export(half).map_err(Error::model)?)?)))
            .collect::<Result<_>>()?;
        let network = match network.take() {
            Some(net) => {
                own.clear_halves();
                if let Some(other) = other {
                    other.clear_halves();
                }
                Some(Self::plan_network(engine, net)?)
            }
            None => None,
        };
        Ok(Self { halves, network })
    }

    /// Exports the unsplit network and plans it on `engine`; burn's copy is dropped once
    /// exported, so a ResNet-50 never holds four copies of its weights at once.
    fn plan_network(engine: Engine, network: BottleNet) -> Result<ExportedGraph> {
        let onnx = bottlenet_model::onnx::export_full(&network).map_err(Error::model)?;
        drop(network);
        ExportedGraph::load(engine, onnx)
    }
}

#[cfg(feature = "server")]
impl BundleCloud {
    /// Serves `cloud`'s halves, BatchNorm folded into the convolutions (inference only).
    pub fn new(cloud: CloudBundle, device: Device) -> Self {
        let class_names = class_names(&cloud.manifest);
        Self {
            name: model_name(&cloud.manifest),
            class_names,
            cloud: cloud.fold_batch_norms(),
            mobile: None,
            network: None,
            device,
            #[cfg(feature = "exported-graphs")]
            exported: ExportedSide::default(),
        }
    }

    /// Runs the halves and the unsplit network on `engine`: with XNNPACK or tract, each (folded)
    /// half and the network are exported and planned now. Call after [`with_network`](Self::with_network)
    /// and [`with_full`](Self::with_full); a cloud-only path composed of two halves stays on burn.
    pub fn with_engine(self, engine: Engine) -> Result<Self> {
        match engine {
            Engine::Burn => Ok(self),
            #[cfg(feature = "exported-graphs")]
            cpu => {
                let mut this = self;
                this.exported = ExportedSide::plan(cpu, &mut this.cloud, this.mobile.as_mut(), &mut this.network, bottlenet_model::onnx::export_cloud)?;
                Ok(this)
            }
            #[cfg(not(feature = "exported-graphs"))]
            cpu => Err(Error::InvalidArgument(format!("{cpu} is not compiled into this binary"))),
        }
    }

    /// The unsplit network the cloud-only path runs (preferred over composed halves).
    pub fn with_network(mut self, network: Option<BottleNet>) -> Self {
        self.network = network.map(FoldBatchNorm::fold_batch_norms);
        self
    }

    /// Also holds the phone halves, so the server can run the whole network (cloud-only path).
    pub fn with_full(mut self, mobile: MobileBundle) -> Self {
        self.mobile = Some(mobile.fold_batch_norms());
        self
    }

    /// Whether a CPU engine holds `split`'s half (always false without one built in).
    fn has_exported_half(&self, split: &str) -> bool {
        #[cfg(feature = "exported-graphs")]
        return self.exported.halves.contains_key(split);
        #[cfg(not(feature = "exported-graphs"))]
        return { let _ = split; false };
    }

    fn half(&self, split: &str) -> Result<&ModelCloud> {
        split_index(&self.cloud.manifest, split)
            .and_then(|j| self.cloud.half(j))
            .ok_or_else(|| unknown_split(&self.cloud.manifest, split))
    }
}

fn class_names(manifest: &Manifest) -> Vec<String> {
    if manifest.class_names.len() == manifest.num_classes {
        manifest.class_names.clone()
    } else {
        (0..manifest.num_classes).map(|k| k.to_string()).collect()
    }
}

#[cfg(feature = "server")]
impl RtCloud for BundleCloud {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn splits(&self) -> Vec<String> {
        self.cloud.manifest.splits.iter().filter(|e| self.cloud.half(e.split).is_some() || self.has_exported_half(&e.name)).map(|e| e.name.clone()).collect()
    }

    fn feature_shape(&self, split: &str) -> Option<Shape> {
        #[cfg(feature = "exported-graphs")]
        if let Some(&[c, h, w]) = self.exported.halves.get(split).map(ExportedGraph::sample_shape) {
            return Some(Shape::new(c, h, w));
        }
        let [c, h, w] = self.half(split).ok()?.reduced_shape().ok()?;
        Some(Shape::new(c, h, w))
    }

    fn codec_params(&self, split: &str) -> Option<CodecParams> {
        self.cloud.manifest.splits.iter().find(|e| e.name == split).map(|e| e.codec_params())
    }

    fn tail(&self, split: &str, features: &[FeatureTensor]) -> Result<Vec<Vec<f32>>> {
        let shape = self.feature_shape(split).ok_or_else(|| unknown_split(&self.cloud.manifest, split))?;
        if features.is_empty() {
            return Ok(Vec::new());
        }
        #[cfg(feature = "exported-graphs")]
        if let Some(graph) = self.exported.halves.get(split) {
            return graph.logits(features.len(), flatten(features, shape)?);
        }
        rows(self.half(split)?.logits(stack(features, shape, &self.device)?).map_err(Error::model)?)
    }

    fn decode_image(&self, jpeg: &[u8]) -> Result<FeatureTensor> {
        let [c, h, w] = self.cloud.manifest.input_shape;
        let pixels = bottlenet_codec::photo::decode_photo(jpeg, c, h, w).map_err(|e| Error::InvalidImage(e.to_string()))?;
        let data = normalise(&self.cloud.manifest, c, &pixels)?;
        FeatureTensor::new(Shape::new(c, h, w), data).map_err(Error::from)
    }

    fn full(&self, inputs: &[FeatureTensor]) -> Result<Vec<Vec<f32>>> {
        let [c, h, w] = self.cloud.manifest.input_shape;
        #[cfg(feature = "exported-graphs")]
        if let Some(graph) = &self.exported.network {
            if inputs.is_empty() {
                return Ok(Vec::new());
            }
            return graph.logits(inputs.len(), flatten(inputs, Shape::new(c, h, w))?);
        }
        if let Some(net) = &self.network {
            if inputs.is_empty() {
                return Ok(Vec::new());
            }
            return run_network(net, stack(inputs, Shape::new(c, h, w), &self.device)?);
        }
        let mobile = self.mobile.as_ref().ok_or_else(|| not_full("server"))?;
        let j = mobile.splits().find(|j| self.cloud.half(*j).is_some()).ok_or_else(|| not_full("server"))?;
        let (Some(head), Some(tail)) = (mobile.half(j), self.cloud.half(j)) else { return Err(not_full("server")) };
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        rows(compose(head, tail, stack(inputs, Shape::new(c, h, w), &self.device)?)?)
    }
}

/// The phone's side of a bundle.
#[derive(Debug)]
pub struct BundlePhone {
    name: String,
    class_names: Vec<String>,
    mobile: MobileBundle,
    cloud: Option<CloudBundle>,
    network: Option<BottleNet>,
    device: Device,
    /// The heads and network planned on a CPU engine ([`BundlePhone::with_engine`]).
    #[cfg(feature = "exported-graphs")]
    exported: ExportedSide,
}

impl BundlePhone {
    /// Runs `mobile`'s halves, BatchNorm folded into the convolutions (inference only).
    pub fn new(mobile: MobileBundle, device: Device) -> Self {
        let class_names = class_names(&mobile.manifest);
        Self {
            name: model_name(&mobile.manifest),
            class_names,
            mobile: mobile.fold_batch_norms(),
            cloud: None,
            network: None,
            device,
            #[cfg(feature = "exported-graphs")]
            exported: ExportedSide::default(),
        }
    }

    /// Runs the heads and the unsplit network on `engine` (see [`BundleCloud::with_engine`]);
    /// call after `with_network` and `with_full`.
    pub fn with_engine(self, engine: Engine) -> Result<Self> {
        match engine {
            Engine::Burn => Ok(self),
            #[cfg(feature = "exported-graphs")]
            cpu => {
                let mut this = self;
                this.exported = ExportedSide::plan(cpu, &mut this.mobile, this.cloud.as_mut(), &mut this.network, bottlenet_model::onnx::export_mobile)?;
                Ok(this)
            }
            #[cfg(not(feature = "exported-graphs"))]
            cpu => Err(Error::InvalidArgument(format!("{cpu} is not compiled into this binary"))),
        }
    }

    /// The unsplit network the mobile-only path runs (preferred over composed halves).
    #[cfg(feature = "phone")]
    pub fn with_network(mut self, network: Option<BottleNet>) -> Self {
        self.network = network.map(FoldBatchNorm::fold_batch_norms);
        self
    }

    /// Also holds the server halves, so the phone can answer alone (mobile-only path).
    #[cfg(feature = "phone")]
    pub fn with_full(mut self, cloud: CloudBundle) -> Self {
        self.cloud = Some(cloud.fold_batch_norms());
        self
    }

    /// Whether a CPU engine holds `split`'s head (always false without one built in).
    fn has_exported_half(&self, split: &str) -> bool {
        #[cfg(feature = "exported-graphs")]
        return self.exported.halves.contains_key(split);
        #[cfg(not(feature = "exported-graphs"))]
        return { let _ = split; false };
    }

    /// The normalised input tensor `[1, C, H, W]` of one image.
    pub fn input(&self, image: &Image) -> Result<Tensor<4>> {
        let data = self.normalised(image)?;
        Ok(Tensor::<4>::from_data(TensorData::new(data, [1, image.channels, image.height, image.width]), &self.device))
    }

    /// One image checked against the model's input and normalised, CHW.
    fn normalised(&self, image: &Image) -> Result<Vec<f32>> {
        check_image(&self.mobile.manifest, image)?;
        normalise(&self.mobile.manifest, image.channels, &image.pixels)
    }

    /// Head + reduction of `split` on one image: eq. 1's input, as a host tensor.
    pub fn features(&self, split: &str, image: &Image) -> Result<FeatureTensor> {
        let manifest = &self.mobile.manifest;
        #[cfg(feature = "exported-graphs")]
        if let Some(graph) = self.exported.halves.get(split) {
            let (shape, values) = graph.run(1, self.normalised(image)?)?;
            let [1, c, h, w] = shape[..] else {
                return Err(Error::Model(format!("the {split} head returned shape {shape:?}, expected [1, c, h, w]")));
            };
            return Ok(FeatureTensor::new(Shape::new(c, h, w), values)?);
        }
        let half = split_index(manifest, split).and_then(|j| self.mobile.half(j)).ok_or_else(|| unknown_split(manifest, split))?;
        let z = half.features(self.input(image)?).map_err(Error::model)?;
        let [_, c, h, w] = z.dims();
        Ok(FeatureTensor::new(Shape::new(c, h, w), to_host(z)?)?)
    }

    /// The codec parameters of `split`.
    pub fn codec_params(&self, split: &str) -> Option<CodecParams> {
        self.mobile.manifest.splits.iter().find(|e| e.name == split).map(|e| e.codec_params())
    }
}

impl RtPhone for BundlePhone {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn splits(&self) -> Vec<String> {
        self.mobile.manifest.splits.iter().filter(|e| self.mobile.half(e.split).is_some() || self.has_exported_half(&e.name)).map(|e| e.name.clone()).collect()
    }

    fn encode(&self, split: &str, image: &Image) -> Result<Vec<u8>> {
        let params = self.codec_params(split).ok_or_else(|| unknown_split(&self.mobile.manifest, split))?;
        let tensor = self.features(split, image)?;
        // Version 2: what the split's manifest fixes (shape, codec) stays home (DESIGN §1).
        Ok(bottlenet_codec::encode_v2(&tensor, &params)?)
    }

    fn full(&self, image: &Image) -> Result<Vec<f32>> {
        #[cfg(feature = "exported-graphs")]
        if let Some(graph) = &self.exported.network {
            let mut out = graph.logits(1, self.normalised(image)?)?;
            return out.pop().ok_or_else(|| Error::Model("the network returned no logits".into()));
        }
        if let Some(net) = &self.network {
            let mut out = run_network(net, self.input(image)?)?;
            return out.pop().ok_or_else(|| Error::Model("the network returned no logits".into()));
        }
        let cloud = self.cloud.as_ref().ok_or_else(|| not_full("phone"))?;
        let j = self.mobile.splits().find(|j| cloud.half(*j).is_some()).ok_or_else(|| not_full("phone"))?;
        let (Some(head), Some(tail)) = (self.mobile.half(j), cloud.half(j)) else { return Err(not_full("phone")) };
        let mut out = rows(compose(head, tail, self.input(image)?)?)?;
        out.pop().ok_or_else(|| Error::Model("the network returned no logits".into()))
    }

    fn jpeg_input(&self, image: &Image, quality: u8) -> Result<Vec<u8>> {
        check_image(&self.mobile.manifest, image)?;
        PhotoJpeg { quality, sampling: ChromaSampling::Yuv420 }
            .encode(image.channels, image.height, image.width, &image.pixels)
            .map_err(|e| Error::InvalidImage(e.to_string()))
    }
}

/// A gRPC server on 127.0.0.1 (port chosen by the OS) running in this process's tokio runtime,
/// for the commands that measure the server path themselves (demo, bench, profile). Stopped with
/// [`LoopbackServer::stop`].
#[cfg(feature = "server")]
#[derive(Debug)]
pub struct LoopbackServer {
    /// `http://127.0.0.1:PORT` (`https://` when the config has TLS).
    pub url: String,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

#[cfg(feature = "server")]
impl LoopbackServer {
    /// Binds `config` (its address replaced by 127.0.0.1:0) serving `model`, and starts serving.
    pub async fn start(config: bottlenet_runtime::ServerConfig, model: impl RtCloud) -> Result<Self> {
        let config = bottlenet_runtime::ServerConfig { addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)), ..config };
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let server = bottlenet_runtime::Server::bind(config, vec![std::sync::Arc::new(model) as std::sync::Arc<dyn RtCloud>]).await?;
        let addr = server.local_addr()?;
        let url = format!("{scheme}://{addr}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        Ok(Self { url, addr, stop, task })
    }

    /// Shuts the server down and waits for it; its error, if it stopped with one.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(|e| Error::Model(format!("the loopback server task failed: {e}")))?
    }
}
