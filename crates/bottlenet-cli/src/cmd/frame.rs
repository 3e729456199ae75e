//! `bottlenet frame inspect FILE`: print a wire frame's header, check it decodes, and fingerprint
//! what it decodes to (CRC-32 of the features as f32 little-endian), so two machines can show
//! that they decode one frame to the same bits (DESIGN §4: frames mean the same on every ISA).

use anyhow::{Context, Result};
use bottlenet_codec::{decode, decode_header};
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
    },
}

pub fn run(command: FrameCommand) -> Result<()> {
    match command {
        FrameCommand::Inspect { file, json } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let header = decode_header(&bytes).with_context(|| format!("{} is not a valid frame", file.display()))?;
            let features = decode(&bytes).with_context(|| format!("{}: header is valid but the payload does not decode", file.display()))?;
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
                    "payload_bytes": header.payload_len, "frame_bytes": header.frame_len(),
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
                println!("frame        {} B (header {} B)", header.frame_len(), bottlenet_codec::HEADER_LEN);
                println!("crc32        {:08x} (ok)", header.crc32);
                println!("decoded      {} values, crc32 {features_crc32} of their f32 LE bytes", features.data.len());
            }
            Ok(())
        }
    }
}
