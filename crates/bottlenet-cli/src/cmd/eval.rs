//! `bottlenet eval`: top-1 accuracy of a bundle's split through the real phone → frame → server
//! path, and the real bytes per image (one image per frame, headers included).

use anyhow::{Context, Result, bail};
use bottlenet_codec::{CodecKind, CodecParams, FeatureTensor, Shape};
use bottlenet_model::{Bundle, DeviceChoice, FoldBatchNorm};
use bottlenet_train::EvalReport;
use bottlenet_train::evaluate::tally_test_set;
use burn::tensor::Tensor;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Split to evaluate (RBj or j); default: every split in the bundle.
    #[arg(long)]
    pub split: Option<String>,
    /// Codec to send features with (default: the split's own).
    #[arg(long)]
    pub codec: Option<CodecKind>,
    /// JPEG quality (default: the split's own).
    #[arg(long)]
    pub quality: Option<u8>,
    /// Quantizer bits (default: the split's own).
    #[arg(long)]
    pub bits: Option<u8>,
    /// Dataset path (default resolution otherwise).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate at most this many test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// One JSON object per split.
    #[arg(long)]
    pub json: bool,
    /// Compute device: flex (CPU), wgpu or cuda (GPU; cargo features of the same name).
    #[arg(long, default_value = "flex")]
    pub device: DeviceChoice,
}

/// Parses `RB3` or `3`.

pub fn run(args: EvalArgs) -> Result<()> {
    let device = super::device_ready(args.device)?.device()?;
    // Inference copies: BatchNorm folded into the convolutions, as `serve` and `infer` run them.
    let mobile = Bundle::load_mobile(&args.bundle, &device)?.fold_batch_norms();
    let cloud = Bundle::load_cloud(&args.bundle, &device)?.fold_batch_norms();
    let (data, _) = super::open_bundle_data(args.data.as_deref(), &mobile.manifest)?;
    let splits: Vec<usize> = match &args.split {
        Some(s) => vec![super::parse_split(s)?],
        None => mobile.splits().collect(),
    };
    for j in splits {
        let entry = mobile.manifest.entry(j).with_context(|| format!("bundle has no split RB{j}; it has {:?}", mobile.splits().map(|j| format!("RB{j}")).collect::<Vec<_>>()))?;
        let (Some(phone), Some(server)) = (mobile.half(j), cloud.half(j)) else { bail!("bundle is missing a half of RB{j}") };
        let own = entry.codec_params();
        let codec = args.codec.unwrap_or(own.codec);
        let params = CodecParams { codec, quality: args.quality.unwrap_or(if codec.is_jpeg() { own.quality.max(1) } else { 0 }), bits: args.bits.unwrap_or(own.bits) }.normalized();
        params.validate()?;
        let total = args.limit.unwrap_or(data.test.len()).min(data.test.len());
        let bar = super::progress(args.json, total as u64, format!("eval RB{j}"));
        let tally = tally_test_set(&data.test, 128, args.limit, &device, &bar, |images| {
            // Phone: head + reduction, then one frame per image.
            let features: Tensor<4> = phone.features(images)?;
            let [n, c, h, w] = features.dims();
            let host = features.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| bottlenet_train::Error::Invalid(format!("reading features: {e:?}")))?;
            let per = c * h * w;
            let frames = (0..n)
                .map(|i| bottlenet_codec::encode(&FeatureTensor::new(Shape::new(c, h, w), host[i * per..(i + 1) * per].to_vec())?, &params))
                .collect::<bottlenet_codec::Result<Vec<_>>>()?;
            let sizes = frames.iter().map(Vec::len).collect();
            // Server: decode + restoration + tail.
            Ok((server.decode(&frames)?, Some(sizes)))
        })?;
        bar.finish_and_clear();
        let report = EvalReport {
            split: entry.name.clone(),
            c_prime: entry.c_prime,
            s: entry.s,
            codec: params.codec.to_string(),
            quality: params.quality,
            bits: params.bits,
            accuracy: tally.accuracy(),
            mean_bytes: tally.mean_bytes(),
            p95_bytes: tally.p95_bytes(),
            images: tally.seen,
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "{} (c'={}, s={}) {} q{} {}-bit: top-1 {:.2}% on {} images, frame mean {:.1} B, p95 {:.0} B",
                report.split, report.c_prime, report.s, report.codec, report.quality, report.bits, 100.0 * report.accuracy, report.images, report.mean_bytes, report.p95_bytes
            );
        }
    }
    Ok(())
}
