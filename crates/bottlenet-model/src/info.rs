//! Split points and the per-split table behind `bottlenet model info` (paper Fig. 6): name,
//! torchvision module, output shape, raw sizes and the head / tail multiply-accumulates, all
//! computed analytically from the layer shapes.

use crate::arch::{BackboneConfig, BackboneSpec};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One place the network can be cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPoint {
    /// `j`: the cut follows residual block `j` (1-based).
    pub index: usize,
    /// `RBj`.
    pub name: String,
    /// torchvision module path of block `j`, e.g. `layer1.0`.
    pub module: String,
    /// Output of block `j` for the given input, `[C, H, W]`.
    pub shape: [usize; 3],
}

/// Every split point of `spec` for a `C×H×W` input.
pub fn split_points(spec: &BackboneSpec, input: [usize; 3]) -> Vec<SplitPoint> {
    let shapes = spec.shapes(input);
    spec.blocks
        .iter()
        .enumerate()
        .map(|(k, block)| SplitPoint { index: k + 1, name: format!("RB{}", k + 1), module: block.module_path(), shape: shapes[k + 1] })
        .collect()
}

/// One row of the model-info table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRow {
    /// `input` (cloud-only: the image itself) or `RBj`.
    pub split: String,
    /// torchvision module path (`layer2.3`), or `input`.
    pub module: String,
    /// `[C, H, W]` of the tensor that would cross the network.
    pub shape: [usize; 3],
    /// Size as 32-bit floats.
    pub f32_bytes: u64,
    /// Size as 8-bit values (eq. 1 with n = 8), before any codec.
    pub u8_bytes: u64,
    /// Multiply-accumulates on the phone (stem and blocks `1..=j`).
    pub head_macs: u64,
    /// Multiply-accumulates on the server (blocks `j+1..=N` and `fc`).
    pub tail_macs: u64,
}

/// The input row followed by one row per split point.
pub fn model_info(config: &BackboneConfig, input: [usize; 3]) -> Result<Vec<InfoRow>> {
    let mut config = *config;
    config.in_channels = input[0];
    let spec = config.spec()?;
    let shapes = spec.shapes(input);
    (0..shapes.len())
        .map(|j| {
            let (head_macs, tail_macs) = spec.split_macs(input, j)?;
            let shape = shapes[j];
            let values = shape.iter().map(|&d| d as u64).product::<u64>();
            let (split, module) =
                if j == 0 { ("input".to_string(), "input".to_string()) } else { (format!("RB{j}"), spec.blocks[j - 1].module_path()) };
            Ok(InfoRow { split, module, shape, f32_bytes: values * 4, u8_bytes: values, head_macs, tail_macs })
        })
        .collect()
}

/// Renders rows as an aligned text table.
#[derive(Debug, Clone, Copy)]
pub struct InfoTable<'a>(pub &'a [InfoRow]);

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

fn human_macs(macs: u64) -> String {
    match macs {
        m if m >= 1_000_000_000 => format!("{:.2} G", m as f64 / 1e9),
        m if m >= 1_000_000 => format!("{:.1} M", m as f64 / 1e6),
        m if m >= 1_000 => format!("{:.1} k", m as f64 / 1e3),
        m => m.to_string(),
    }
}

impl fmt::Display for InfoTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["split", "module", "shape", "f32", "8-bit", "head MACs", "tail MACs"];
        let rows: Vec<[String; 7]> = self
            .0
            .iter()
            .map(|r| {
                [
                    r.split.clone(),
                    r.module.clone(),
                    format!("{}x{}x{}", r.shape[0], r.shape[1], r.shape[2]),
                    human_bytes(r.f32_bytes),
                    human_bytes(r.u8_bytes),
                    human_macs(r.head_macs),
                    human_macs(r.tail_macs),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let sep = if i + 1 == cells.len() { "" } else { "  " };
                // Names left-aligned, numbers right-aligned.
                if i < 2 { write!(f, "{cell:<w$}{sep}")? } else { write!(f, "{cell:>w$}{sep}")? }
            }
            writeln!(f)
        };
        line(f, &header.map(String::from))?;
        for row in &rows {
            line(f, row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)
mod tests {
    use super::*;
    use crate::arch::Arch;

    #[test]
    fn resnet50_info_rows() {
        let rows = model_info(&BackboneConfig::new(Arch::ResNet50, 3, 1000), [3, 224, 224]).unwrap();
        assert_eq!(rows.len(), 17);
        assert_eq!(rows[0].split, "input");
        assert_eq!(rows[0].u8_bytes, 3 * 224 * 224);
        assert_eq!(rows[0].head_macs, 0);
        assert_eq!(rows[1].split, "RB1");
        assert_eq!(rows[1].module, "layer1.0");
        assert_eq!(rows[1].shape, [256, 56, 56]);
        assert_eq!(rows[1].f32_bytes, 256 * 56 * 56 * 4);
        assert_eq!(rows[16].module, "layer4.2");
        assert_eq!(rows[16].tail_macs, 2048 * 1000);
        // Phone work only grows, server work only shrinks, along the network.
        for pair in rows.windows(2) {
            assert!(pair[1].head_macs > pair[0].head_macs);
            assert!(pair[1].tail_macs < pair[0].tail_macs);
        }
        let json = serde_json::to_value(&rows[1]).unwrap();
        for key in ["split", "module", "shape", "f32_bytes", "u8_bytes", "head_macs", "tail_macs"] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        let table = InfoTable(&rows).to_string();
        assert_eq!(table.lines().count(), 18);
        assert!(table.contains("layer4.2") && table.contains("256x56x56"));
    }
}
