//! `bottlenet codec`: frame bytes, speed and round-trip error of each codec on one tensor.

use anyhow::{Context, Result, bail};
use bottlenet_codec::synthetic::relu_like;
use bottlenet_codec::{CodecKind, CodecParams, FeatureTensor, Shape, decode, encode};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct CodecArgs {
    /// A feature tensor as `.npy` (f32 or f64; shape C×H×W, H×W, or 1×C×H×W). Without it, a
    /// seeded synthetic ReLU-like tensor of `--shape` is used.
    pub file: Option<PathBuf>,
    /// Shape of the synthetic tensor, CxHxW.
    #[arg(long, default_value = "1x28x28")]
    pub shape: String,
    /// Seed of the synthetic tensor.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Codecs to measure (comma-separated): jpeg, jpeg-abbrev, png, raw.
    #[arg(long, value_delimiter = ',', default_value = "jpeg,jpeg-abbrev,png,raw")]
    pub codec: Vec<String>,
    /// JPEG qualities to measure (comma-separated, 1–100; ignored by png and raw).
    #[arg(long, value_delimiter = ',', default_value = "20")]
    pub quality: Vec<u8>,
    /// Quantizer bits n (paper eq. 1), 1–8.
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
    /// Timed repetitions per row (the median is reported).
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
    /// Also write the first row's frame to this file (see `bottlenet frame inspect`).
    #[arg(long)]
    pub write_frame: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One measured (codec, quality) row.
#[derive(Debug, Serialize)]
pub struct CodecRow {
    pub codec: String,
    pub quality: u8,
    pub bits: u8,
    pub shape: String,
    pub frame_bytes: usize,
    pub payload_bytes: usize,
    pub encode_us: f64,
    pub decode_us: f64,
    pub rel_rmse: f64,
}

fn load_npy(path: &Path) -> Result<FeatureTensor> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).with_context(|| format!("{} is not a .npy file", path.display()))?;
    let dims: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let shape = match dims.as_slice() {
        [h, w] => Shape::new(1, *h, *w),
        [c, h, w] | [1, c, h, w] => Shape::new(*c, *h, *w),
        _ => bail!("{}: shape {dims:?} is not CxHxW, HxW or 1xCxHxW; save one sample's features", path.display()),
    };
    if npy.order() != npyz::Order::C {
        bail!("{}: Fortran-ordered arrays are not supported; save with numpy's default C order", path.display());
    }
    let data: Vec<f32> = match npy.dtype().descr().as_str() {
        "<f4" => npy.into_vec::<f32>()?,
        "<f8" => npy.into_vec::<f64>()?.into_iter().map(|v| v as f32).collect(),
        other => bail!("{}: dtype {other} is not supported; save float32 or float64", path.display()),
    };
    Ok(FeatureTensor::new(shape, data)?)
}

fn median_us(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

/// Measures one codec configuration on `tensor`.
pub fn measure(tensor: &FeatureTensor, params: &CodecParams, repeats: usize) -> Result<(CodecRow, Vec<u8>)> {
    let frame = encode(tensor, params)?;
    let decoded = decode(&frame)?;
    let repeats = repeats.max(1);
    let mut encode_times = Vec::with_capacity(repeats);
    let mut decode_times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let f = encode(tensor, params)?;
        encode_times.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        std::hint::black_box(decode(&f)?);
        decode_times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let row = CodecRow {
        codec: params.codec.to_string(),
        quality: params.quality,
        bits: params.bits,
        shape: tensor.shape.to_string(),
        frame_bytes: frame.len(),
        payload_bytes: frame.len() - bottlenet_codec::HEADER_LEN,
        encode_us: median_us(encode_times),
        decode_us: median_us(decode_times),
        rel_rmse: tensor.relative_rmse(&decoded),
    };
    Ok((row, frame))
}

pub fn run(args: CodecArgs) -> Result<()> {
    let tensor = match &args.file {
        Some(path) => load_npy(path)?,
        None => relu_like(args.shape.parse().context("bad --shape")?, args.seed),
    };
    let mut configs = Vec::new();
    for name in &args.codec {
        let codec: CodecKind = name.parse()?;
        if codec.is_jpeg() {
            configs.extend(args.quality.iter().map(|&quality| CodecParams { codec, quality, bits: args.bits }));
        } else {
            configs.push(CodecParams { codec, quality: 0, bits: args.bits });
        }
    }
    if !args.json {
        println!(
            "{:<12} {:>7} {:>4} {:>10} {:>11} {:>13} {:>10} {:>10} {:>9}",
            "codec", "quality", "bits", "shape", "frame_bytes", "payload_bytes", "encode_us", "decode_us", "rel_rmse"
        );
    }
    for (i, params) in configs.iter().enumerate() {
        params.validate()?;
        let (row, frame) = measure(&tensor, params, args.repeats)?;
        if let (0, Some(path)) = (i, &args.write_frame) {
            std::fs::write(path, &frame).with_context(|| format!("cannot write {}", path.display()))?;
        }
        if args.json {
            println!("{}", serde_json::to_string(&row)?);
        } else {
            println!(
                "{:<12} {:>7} {:>4} {:>10} {:>11} {:>13} {:>10.1} {:>10.1} {:>9.4}",
                row.codec, row.quality, row.bits, row.shape, row.frame_bytes, row.payload_bytes, row.encode_us, row.decode_us, row.rel_rmse
            );
        }
    }
    Ok(())
}
