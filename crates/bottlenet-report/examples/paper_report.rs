//! Writes the report for the paper's own profiles (`profiles/paper-*.json`) with ResNet-50's
//! feature sizes (paper Fig. 6) into the folder given as the first argument (default `report`):
//!
//! `cargo run -p bottlenet-report --example paper_report -- /tmp/paper-report`

use bottlenet_report::{FeatureSizeRow, FeatureSizes, ReportInputs, write_report};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "report".into());
    let profiles = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
    let mut inputs = ReportInputs::load(
        profiles.join("paper-resnet50-results.json"),
        profiles.join("paper-tx2-mobile.json"),
        profiles.join("paper-1080ti-cloud.json"),
    )?;
    // ResNet-50 on 224×224 RGB: RB1–3 give 256×56×56, RB4–7 512×28×28, RB8–13 1024×14×14,
    // RB14–16 2048×7×7.
    let rows = (1..=16u64)
        .map(|j| {
            let (c, hw) = match j {
                1..=3 => (256, 56),
                4..=7 => (512, 28),
                8..=13 => (1024, 14),
                _ => (2048, 7),
            };
            FeatureSizeRow {
                split: format!("RB{j}"),
                f32_bytes: 4 * c * hw * hw,
                u8_bytes: c * hw * hw,
            }
        })
        .collect();
    inputs.feature_sizes = Some(FeatureSizes {
        input_bytes: 3 * 224 * 224,
        rows,
    });
    let files = write_report(&inputs, &out)?;
    for path in &files.written {
        println!("wrote {}", path.display());
    }
    for s in &files.skipped {
        println!("skipped {}: {}", s.item, s.reason);
    }
    Ok(())
}
