//! `bottlenet frame inspect FILE`: print a wire frame's header, check it decodes, and fingerprint
//! what it decodes to (CRC-32 of the features as f32 little-endian), so two machines can show
//! that they decode one frame to the same bits. A version-2 frame leaves shape and codec to its
//! split's manifest: give them with `--shape` (and `--codec/--quality/--bits` when not the
//! paper's jpeg-abbrev q20 8-bit).

use anyhow::{Context, Result, bail};
use bottlenet_codec::{CodecKind, CodecParams, FrameSpec, Shape, VERSION_V2, decode_header_with, decode_with};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum FrameCommand {
    /// Print a frame's header fields and whether its payload decodes.
    Inspect {
        /// The frame file.
        file: PathBuf,
        /// Print the header as one JSON object.
        #[arg(long)]
        json: bool,
        /// A version-2 frame's feature shape CxHxW (its split's manifest fixes it).
        #[arg(long)]
        shape: Option<Shape>,
        /// A version-2 frame's codec.
        #[arg(long, default_value = "jpeg-abbrev")]
        codec: CodecKind,
        /// A version-2 frame's JPEG quality.
        #[arg(long, default_value_t = 20)]
        quality: u8,
        /// A version-2 frame's quantizer bits.
        #[arg(long, default_value_t = 8)]
        bits: u8,
    },
}

pub fn run(command: FrameCommand) -> Result<()> {
    match command {
        FrameCommand::Inspect { file, json, shape, codec, quality, bits } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let v2 = bytes.first() == Some(&VERSION_V2);
            let spec = match shape {
                Some(shape) => FrameSpec { shape, params: CodecParams { codec, quality, bits }.normalized() },
                None if v2 => bail!("{} is a version-2 frame, which leaves shape and codec to its split's manifest: pass --shape CxHxW (and --codec/--quality/--bits if not jpeg-abbrev q20 8-bit)", file.display()),
                // A version-1 frame describes itself; the spec is not consulted.
                None => FrameSpec { shape: Shape::new(1, 1, 1), params: CodecParams::paper() },
            };
            let header = decode_header_with(&bytes, &spec).with_context(|| format!("{} is not a valid frame{}", file.display(), if v2 { " for that shape and codec" } else { "" }))?;
            let features = decode_with(&bytes, &spec).with_context(|| format!("{}: header is valid but the payload does not decode", file.display()))?;
            let mut hasher = crc32fast::Hasher::new();
            for value in &features.data {
                hasher.update(&value.to_le_bytes());
            }
            let features_crc32 = format!("{:08x}", hasher.finalize());
            let (width, height) = header.image_size();
            if json {
                let value = serde_json::json!({
                    "version": header.version, "codec": header.params.codec.name(), "quality": header.params.quality,
                    "bits": header.params.bits, "shape": header.shape.to_string(), "min": header.min, "max": header.max,
                    "payload_bytes": header.payload_len, "frame_bytes": header.frame_len(), "header_bytes": header.header_len,
                    "shape_from": if v2 { "manifest (--shape)" } else { "frame" },
                    "crc32": format!("{:08x}", header.crc32), "tiled_image": format!("{width}x{height}"),
                    "features_crc32": features_crc32,
                });
                println!("{value}");
            } else {
                println!("version      {}", header.version);
                println!("codec        {}", header.params.codec);
                println!("quality      {}", header.params.quality);
                println!("bits         {}", header.params.bits);
                println!("shape        {} (CxHxW)", header.shape);
                println!("tiled image  {width}x{height} px");
                println!("min / max    {} / {}", header.min, header.max);
                println!("payload      {} B", header.payload_len);
                println!("frame        {} B (header {} B)", header.frame_len(), header.header_len);
                if v2 {
                    println!("             shape, codec, quality, bits: from the manifest (given), covered by the CRC");
                }
                println!("crc32        {:08x} (ok)", header.crc32);
                println!("decoded      {} values, crc32 {features_crc32} of their f32 LE bytes", features.data.len());
            }
            Ok(())
        }
    }
}
