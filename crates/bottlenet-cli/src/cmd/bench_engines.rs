//! `bottlenet bench --only engines` (cargo feature `tract`): the ONNX graphs `bottlenet export`
//! writes (docs/onnx.md), run in tract and, where built in, oneDNN and XNNPACK, beside the same modules in
//! burn flex, on the same inputs and the same compute threads. Each graph's output must agree
//! with flex within [`TOLERANCE`] of the output's scale before any time is reported; a larger
//! difference is an error.
//!
//! * ResNet-50, 3×224×224, batch 1, the `resnet50` group's seeded backbone with the RB1 bottleneck
//!   (c' = 1, s = 2): the phone half on the seeded random image, the server half on what the codec
//!   gives back for the phone half's features (quantize, tile, JPEG, frame and back), and the
//!   unsplit network;
//! * the bundle (`--bundle`, the shipped `models/fashion-compact`), its first split: the same three
//!   on the first embedded Fashion-MNIST test image.
//!
//! The engines take turns, one timed run each (after an untimed one), so a noisy machine slows
//! them alike. `auto` is timed too, named by the engine it kept for each graph.

use super::bench::{Bench, figure, time};
use anyhow::{Context, Result, anyhow, bail};
use bottlenet_codec::{CodecParams, Shape};
use bottlenet_data::{BatchOptions, Batcher, embedded_subset};
use bottlenet_model::onnx::{OnnxModel, export_cloud, export_full, export_mobile};
use bottlenet_model::{Arch, BottleNet, BottleNetConfig, Bundle, CloudHalf, CodecMode, MobileHalf};
use burn::tensor::{Tensor, TensorData};
use crate::engine::{Engine, ONEDNN_VERSION, TRACT_VERSION, XNNPACK_VERSION};
use crate::exported_graph::ExportedGraph;

const GROUP: &str = "engines";

/// Largest |engine − flex| accepted, as a fraction of the flex output's scale (its largest
/// magnitude, at least 1): random ResNet-50 weights give logits in the tens.
const TOLERANCE: f32 = 1e-4;

/// The exported-graph engines this binary holds (tract, and oneDNN and XNNPACK where they were
/// found), then `auto` where there are two or more (the fastest on each graph, timed at load: the
/// CPU default).
fn exported_engines() -> Vec<Engine> {
    let mut engines = crate::engine::exported_engines();
    if engines.len() >= 2 {
        engines.push(Engine::Auto);
    }
    engines
}

/// How a figure names an engine.
fn engine_label(engine: Engine) -> String {
    match engine {
        Engine::Onednn => format!("onednn {ONEDNN_VERSION}"),
        Engine::Xnnpack => format!("xnnpack {XNNPACK_VERSION}"),
        Engine::Tract => format!("tract {TRACT_VERSION}"),
        Engine::Auto => "auto (the fastest per graph)".into(),
        Engine::Burn => "burn flex".into(),
    }
}

/// An exported graph planned as the serving engine plans it, with one input.
struct GraphCase {
    engine: Engine,
    graph: ExportedGraph,
    batch: usize,
    input: Vec<f32>,
}

impl GraphCase {
    /// `model` planned on every exported-graph engine built in.
    fn load_all(model: OnnxModel, shape: &[usize], input: &[f32]) -> Result<Vec<Self>> {
        exported_engines()
            .into_iter()
            .map(|engine| Ok(Self { engine, graph: ExportedGraph::load(engine, model.clone())?, batch: shape[0], input: input.to_vec() }))
            .collect()
    }

    /// One inference; the first output, row-major.
    fn run(&self) -> Result<Vec<f32>> {
        Ok(self.graph.run(self.batch, self.input.clone())?.1)
    }
}

fn host<const D: usize>(x: Tensor<D>) -> Result<Vec<f32>> {
    x.into_data().try_into_vec_as::<f32>().map_err(|e| anyhow!("reading a flex tensor back: {e:?}"))
}

/// One network's three graphs in both engines.
struct Network<'a> {
    /// e.g. `resnet50 RB1`.
    label: String,
    mobile: &'a MobileHalf,
    cloud: &'a CloudHalf,
    /// The unsplit network (or, with a split, the bottleneck without codec, as `export_full`).
    full: &'a BottleNet,
    /// `[1, C, H, W]`, normalised as the network expects.
    image: Tensor<4>,
    codec: CodecParams,
}

/// The ResNet-50 with the RB1 bottleneck (c' = 1, s = 2) around the `resnet50` group's seeded
/// backbone, its halves, and the seeded input image: what `engines` and `tract-ops` run.
pub(super) struct ResNet50Rb1 {
    pub(super) split_name: String,
    pub(super) mobile: MobileHalf,
    pub(super) cloud: CloudHalf,
    /// The unsplit network.
    pub(super) full: BottleNet,
    /// `[1, 3, 224, 224]`.
    pub(super) image: Tensor<4>,
    pub(super) codec: CodecParams,
}

impl ResNet50Rb1 {
    /// The image's shape and values, row-major.
    pub(super) fn image_values(&self) -> Result<(Vec<usize>, Vec<f32>)> {
        Ok((self.image.dims().to_vec(), host(self.image.clone())?))
    }
}

/// What the server half receives for `image`: the phone half's features through eq. 1's
/// quantizer, tiling, the split's codec and frame, and back. Their shape and values, row-major.
pub(super) fn server_input(mobile: &MobileHalf, image: &Tensor<4>, codec: &CodecParams) -> Result<(Vec<usize>, Vec<f32>)> {
    let features = mobile.features(image.clone())?;
    let shape = features.dims();
    let [n, c, h, w] = shape;
    let (decoded, _) = bottlenet_codec::roundtrip_batch(&host(features)?, n, Shape::new(c, h, w), codec)?;
    Ok((shape.to_vec(), decoded))
}

impl Bench<'_> {
    /// [`ResNet50Rb1`], built from [`Bench::seeded_backbone`].
    pub(super) fn resnet50_rb1(&self) -> Result<ResNet50Rb1> {
        let config = BottleNetConfig::new(Arch::ResNet50, [3, 224, 224], 1000);
        let (backbone, image) = self.seeded_backbone(&config)?;
        let split = config.clone().with_split(1, 1, 2);
        let split_net = BottleNet::from_backbone(&split, backbone.clone(), &self.device)?;
        let full = BottleNet::from_backbone(&config, backbone, &self.device)?;
        let (mobile, cloud) = (split_net.mobile_half()?, split_net.cloud_half()?);
        Ok(ResNet50Rb1 { split_name: split.split_name(), mobile, cloud, full, image, codec: split.codec })
    }

    pub(super) fn engines(&mut self) -> Result<()> {
        let threads = self.threads;
        if !self.args.json {
            let engines: Vec<String> = exported_engines().into_iter().map(engine_label).collect();
            self.bar.suspend(|| println!("engines: burn flex ({threads} threads) vs {} (the serving engines' plans of the exported graphs, {threads} threads)", engines.join(" and ")));
        }
        let net = self.resnet50_rb1()?;
        let label = format!("resnet50 {}", net.split_name);
        self.compare_network(Network { label, mobile: &net.mobile, cloud: &net.cloud, full: &net.full, image: net.image.clone(), codec: net.codec })?;
        // The bundle's first split, on a real test image.
        let dir = &self.args.bundle;
        if !dir.join(bottlenet_model::MANIFEST_FILE).is_file() {
            bail!("no model bundle at {} (run from the repository root, or pass --bundle DIR)", dir.display());
        }
        let phones = Bundle::load_mobile(dir, &self.device)?;
        let servers = Bundle::load_cloud(dir, &self.device)?;
        let full = Bundle::load_full(dir, &self.device)?.with_context(|| format!("the bundle {} has no full network; add one with `bottlenet model add-full`", dir.display()))?;
        let entry = phones.manifest.splits.first().context("the bundle has no splits")?;
        let (Some(mobile), Some(cloud)) = (phones.half(entry.split), servers.half(entry.split)) else {
            bail!("the bundle {} is missing a half of {}", dir.display(), entry.name);
        };
        let data = embedded_subset()?;
        let batch = Batcher::new(data.test.clone(), BatchOptions::eval(1))?.epoch(0).next().context("the embedded test set is empty")??;
        if batch.shape[1..] != phones.manifest.input_shape {
            bail!("the bundle expects {:?} images but the embedded test set holds {:?}; pass a Fashion-MNIST bundle with --bundle", phones.manifest.input_shape, &batch.shape[1..]);
        }
        let image = Tensor::<4>::from_data(TensorData::new(batch.pixels, batch.shape), &self.device);
        let label = format!("{} {}", phones.manifest.arch, entry.name);
        self.compare_network(Network { label, mobile, cloud, full: &full, image, codec: entry.codec_params() })
    }

    fn compare_network(&mut self, net: Network<'_>) -> Result<()> {
        let image_shape = net.image.dims();
        let image = host(net.image.clone())?;
        let (feature_shape, decoded) = server_input(net.mobile, &net.image, &net.codec)?;
        let [zc, zh, zw] = [feature_shape[1], feature_shape[2], feature_shape[3]];
        let z = Tensor::<4>::from_data(TensorData::new(decoded.clone(), feature_shape.clone()), &self.device);
        let [c, h, w] = [image_shape[1], image_shape[2], image_shape[3]];

        let graphs = GraphCase::load_all(export_mobile(net.mobile)?, &image_shape, &image)?;
        let what = format!("{} phone half (head + reduction) {c}x{h}x{w}", net.label);
        self.compare(&what, || host(net.mobile.features(net.image.clone())?), &graphs)?;

        let graphs = GraphCase::load_all(export_cloud(net.cloud)?, &feature_shape, &decoded)?;
        let what = format!("{} server half (restoration + tail) {zc}x{zh}x{zw}", net.label);
        self.compare(&what, || host(net.cloud.logits(z.clone())?), &graphs)?;

        let graphs = GraphCase::load_all(export_full(net.full)?, &image_shape, &image)?;
        let arch = net.full.config().arch;
        self.compare(&format!("{arch} full network {c}x{h}x{w}"), || host(net.full.forward(net.image.clone(), CodecMode::Identity)?), &graphs)
    }

    /// Checks that every engine gives flex's output, then times flex and the engines in
    /// alternating rounds and pushes the flex figure and each engine's (whose note carries the
    /// ratio and the difference).
    fn compare(&mut self, what: &str, mut flex: impl FnMut() -> Result<Vec<f32>>, graphs: &[GraphCase]) -> Result<()> {
        let ours = flex()?;
        let scale = ours.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let mut diffs = Vec::with_capacity(graphs.len());
        for case in graphs {
            let name = case.engine;
            let theirs = case.run()?;
            if ours.len() != theirs.len() {
                bail!("{what}: {name} gives {} values but flex {}; the exported graph does not match the model", theirs.len(), ours.len());
            }
            let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            if diff.is_nan() || diff > TOLERANCE * scale {
                bail!("{what}: {name} differs from flex by {diff:e} at output scale {scale:e} (allowed {TOLERANCE:e} of it); the exported graph or an engine is wrong, so no time is reported");
            }
            diffs.push(diff);
        }
        let (warmup, runs) = (self.args.warmup, self.args.runs);
        let mut run_flex = || flex().map(drop);
        time(warmup, 0, 1e3, &mut run_flex)?;
        for case in graphs {
            time(warmup, 0, 1e3, &mut || case.run().map(drop))?;
        }
        let mut flex_ms = Vec::with_capacity(runs);
        let mut engine_ms = vec![Vec::with_capacity(runs); graphs.len()];
        // Each timed run follows an untimed one of the same engine: a thread pool's workers spin
        // for a while after each run (pthreadpool's, rayon's), and a run right after another
        // engine's would pay for those cores.
        for _ in 0..runs {
            flex_ms.extend(time(1, 1, 1e3, &mut run_flex)?);
            for (case, ms) in graphs.iter().zip(&mut engine_ms) {
                ms.extend(time(1, 1, 1e3, &mut || case.run().map(drop))?);
            }
        }
        let flex_figure = figure(GROUP, format!("{what}, burn flex"), "ms", flex_ms, String::new());
        let flex_median = flex_figure.median;
        self.push(flex_figure);
        for ((case, ms), diff) in graphs.iter().zip(engine_ms).zip(diffs) {
            // `auto` names the engine it kept for this graph.
            let label = match case.engine {
                Engine::Auto => format!("auto ({})", case.graph.engine()),
                engine => engine_label(engine),
            };
            let mut engine_figure = figure(GROUP, format!("{what}, {label}"), "ms", ms, String::new());
            engine_figure.note = format!("flex/{} {:.2}x; max |{0} - flex| {diff:.2e} at output scale {scale:.3} ({:.1e} of it)", case.engine, flex_median / engine_figure.median, diff / scale);
            self.push(engine_figure);
        }
        Ok(())
    }
}
