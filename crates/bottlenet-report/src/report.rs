//! `bottlenet report`: every table and plot written into one folder, with a `report.md` that
//! ties them together.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::inputs::ReportInputs;
use crate::plot::{self, Metric};
use crate::tables::Tables;

/// File names inside the output folder.
pub const REPORT_MD: &str = "report.md";
pub const TABLE4_MD: &str = "table4.md";
pub const TABLE4_CSV: &str = "table4.csv";
pub const TABLE5_MD: &str = "table5.md";
pub const TABLE5_CSV: &str = "table5.csv";
pub const FEATURE_SIZE_PNG: &str = "feature_size.png";
pub const ACCURACY_PNG: &str = "accuracy_vs_bytes.png";
pub const LATENCY_PNG: &str = "latency.png";
pub const ENERGY_PNG: &str = "energy.png";

/// Something the report left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What was not produced, e.g. `feature_size.png`.
    pub item: String,
    pub reason: String,
}

/// What [`write_report`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    /// Every file written, in the order written (`report.md` last).
    pub written: Vec<PathBuf>,
    /// Plots left out for lack of their optional input.
    pub skipped: Vec<Skipped>,
    /// The tables the files show.
    pub tables: Tables,
}

/// Every report file goes through the project's atomic write: a reader (or a crash) never sees
/// half a table, and a file of the same name is replaced, not rewritten in place.
fn write_text(path: &Path, text: &str) -> Result<()> {
    Ok(bottlenet_partition::write_atomic(path, text.as_bytes())?)
}

/// Computes Tables 4 and 5 and writes them (Markdown and CSV) with every plot whose input is
/// present into `out_dir` (created if missing). Existing files of the same names are replaced.
pub fn write_report(inputs: &ReportInputs, out_dir: impl AsRef<Path>) -> Result<ReportFiles> {
    let out = out_dir.as_ref();
    let tables = Tables::compute(inputs)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        action: "create the folder",
        path: out.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    let mut emit = |name: &str, text: &str| -> Result<()> {
        let path = out.join(name);
        write_text(&path, text)?;
        written.push(path);
        Ok(())
    };
    let table4 = tables.table4_markdown();
    let table5 = tables.table5_markdown();
    emit(TABLE4_MD, &table4)?;
    emit(TABLE4_CSV, &tables.table4_csv()?)?;
    emit(TABLE5_MD, &table5)?;
    emit(TABLE5_CSV, &tables.table5_csv()?)?;

    let size = inputs.plot_size;
    let mut plots = Vec::new();
    match &inputs.feature_sizes {
        Some(sizes) if !sizes.rows.is_empty() => {
            plot::feature_size_png(&out.join(FEATURE_SIZE_PNG), size, sizes, &inputs.results)?;
            plots.push((
                FEATURE_SIZE_PNG,
                "Feature size per split point (cf. paper Fig. 6)",
            ));
        }
        _ => skipped.push(Skipped {
            item: FEATURE_SIZE_PNG.into(),
            reason: "no feature-size rows given (per-split float32 and 8-bit byte counts)".into(),
        }),
    }
    if inputs.accuracy_points.is_empty() {
        skipped.push(Skipped {
            item: ACCURACY_PNG.into(),
            reason: "no accuracy-against-bytes points given (aware/naive search records over JPEG quality)".into(),
        });
    } else {
        plot::accuracy_png(
            &out.join(ACCURACY_PNG),
            size,
            &inputs.accuracy_points,
            inputs.results.baseline_accuracy,
            inputs.tolerance_points,
        )?;
        plots.push((
            ACCURACY_PNG,
            "Accuracy against compressed feature size (cf. paper Fig. 7)",
        ));
    }
    if tables.table4.is_empty() {
        for item in [LATENCY_PNG, ENERGY_PNG] {
            skipped.push(Skipped {
                item: item.into(),
                reason: "the results hold no split".into(),
            });
        }
    } else {
        plot::per_split_png(&out.join(LATENCY_PNG), size, &tables, Metric::Latency)?;
        plot::per_split_png(&out.join(ENERGY_PNG), size, &tables, Metric::Energy)?;
        plots.push((
            LATENCY_PNG,
            "End-to-end latency per split point and network",
        ));
        plots.push((ENERGY_PNG, "Phone energy per split point and network"));
    }
    written.extend(plots.iter().map(|(name, _)| out.join(name)));

    let mut md = String::new();
    let r = &inputs.results;
    let _ = writeln!(md, "# BottleNet report: {} on {}\n", r.model, r.dataset);
    let _ = writeln!(
        md,
        "Mobile: {} (load level {}). Cloud: {} (load level {}). PM = {:.3} W. Baseline accuracy {:.2} %, \
         tolerance {} points, so a split needs at least {:.2} %.\n",
        inputs.mobile.device,
        inputs.mobile.load_level,
        inputs.cloud.device,
        inputs.cloud.load_level,
        tables.mobile_power_w,
        r.baseline_accuracy,
        inputs.tolerance_points,
        tables.accuracy_threshold,
    );
    if let Some(overhead) = inputs.cloud.wire_overhead_bytes {
        let _ = writeln!(
            md,
            "Bytes are what leaves the phone per image: the frame (or JPEG) plus the transport's \
             {overhead:.0} B of per-image overhead (cloud profile), so TU = 8·bytes/NB.\n"
        );
    }
    md.push_str("| network | up-link (Mbit/s) | α_u (mW/Mbit/s) | β (mW) | P_u (mW) |\n|---|---:|---:|---:|---:|\n");
    for n in &inputs.networks {
        let net = &n.network;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} |",
            n.name,
            net.uplink_mbps,
            net.alpha_mw_per_mbps,
            net.beta_mw,
            net.uplink_power_mw()
        );
    }
    let _ = writeln!(
        md,
        "\n## Every split on every network (cf. paper Table 4)\n\nBold: the best split on that network. \
         Latency = TM + TU + TC; energy = TM·PM + TU·P_u.\n\n{table4}\n\
         ## Against mobile-only and cloud-only (cf. paper Table 5)\n\n{table5}"
    );
    if !plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for (name, caption) in &plots {
            let _ = writeln!(md, "![{caption}]({name})\n");
        }
    }
    if !skipped.is_empty() {
        md.push_str("\n## Left out\n\n");
        for s in &skipped {
            let _ = writeln!(md, "* {}: {}", s.item, s.reason);
        }
    }
    let path = out.join(REPORT_MD);
    write_text(&path, &md)?;
    written.push(path);
    Ok(ReportFiles {
        written,
        skipped,
        tables,
    })
}
