//! `bottlenet report`: the paper's Tables 4-5 (Markdown, CSV) and the plots, from training
//! results and the two device profiles, written into one folder. With `--arch` the feature size
//! per split (Fig. 6) comes from the backbone's layer shapes; with `--search DIR` the
//! accuracy-against-bytes plot (Fig. 7) comes from the search's records of the results' first
//! split's bottleneck (every mode and quality).

use anyhow::{Context, Result};
use bottlenet_model::{Arch, BackboneConfig, model_info, parse_shape};
use bottlenet_partition::{SearchRecord, read_records, record_files};
use bottlenet_report::{AccuracyPoint, FeatureSizeRow, FeatureSizes, ReportInputs, write_report};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Training results (accuracy and mean bytes per split, cloud-only, mobile-only), JSON.
    #[arg(long)]
    pub results: PathBuf,
    /// The phone's profile: TM_j per candidate (role mobile), JSON.
    #[arg(long)]
    pub mobile_profile: PathBuf,
    /// The server's profile: TC_j per candidate (role cloud), JSON.
    #[arg(long)]
    pub cloud_profile: PathBuf,
    /// The phone's compute power PM, W. Default: the mobile profile's power_w, else 1.3.
    #[arg(long)]
    pub mobile_power_w: Option<f64>,
    /// Allowed accuracy loss against the unmodified network, points.
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Backbone of the results (e.g. compact, resnet50): draws the feature size per split (Fig. 6).
    #[arg(long)]
    pub arch: Option<Arch>,
    /// With --arch: input shape, CxHxW.
    #[arg(long, default_value = "3x224x224")]
    pub input: String,
    /// With --arch: channel multiplier of the compact backbone.
    #[arg(long, default_value_t = 1)]
    pub width: usize,
    /// With --arch: classifier outputs.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
    /// A search output folder (its shard-*.jsonl records): draws accuracy against bytes (Fig. 7).
    #[arg(long)]
    pub search: Option<PathBuf>,
    /// With --search: the bottleneck Fig. 7 draws, `SPLIT,C',S` (e.g. `1,1,2`); default: the
    /// results' first split's.
    #[arg(long, value_name = "J,C,S")]
    pub fig7: Option<String>,
    /// Output folder (created if missing; files of the same names are replaced).
    #[arg(long)]
    pub out: PathBuf,
}

/// Fig. 6's rows: the 8-bit input and every split's feature tensor, from the layer shapes.
pub fn feature_sizes(arch: Arch, width: usize, input: [usize; 3], classes: usize) -> Result<FeatureSizes> {
    let rows = model_info(&BackboneConfig::new(arch, input[0], classes).with_width(width), input)?;
    let input_bytes = rows.iter().find(|r| r.split == "input").map_or((input[0] * input[1] * input[2]) as u64, |r| r.u8_bytes);
    Ok(FeatureSizes {
        input_bytes,
        rows: rows.iter().filter(|r| r.split != "input").map(|r| FeatureSizeRow { split: r.split.clone(), f32_bytes: r.f32_bytes, u8_bytes: r.u8_bytes }).collect(),
    })
}

/// Every record of every shard file in a search folder.
fn search_records(search: &Path) -> Result<Vec<SearchRecord>> {
    let files = record_files(search)?;
    if files.is_empty() {
        anyhow::bail!("{} holds no shard-*.jsonl search records", search.display());
    }
    let mut records = Vec::new();
    for file in files {
        records.extend(read_records(&file)?.records);
    }
    records.sort_by(|a, b| (a.split_index, a.c_prime, a.s, a.mode.name(), a.quality).cmp(&(b.split_index, b.c_prime, b.s, b.mode.name(), b.quality)));
    Ok(records)
}

/// The search's grid as a Markdown table: every configuration's accuracy and bytes, marked where
/// it is within the tolerance of the baseline.
fn search_table(records: &[SearchRecord], baseline_accuracy: f64, tolerance_points: f64) -> String {
    let threshold = baseline_accuracy - tolerance_points;
    let mut out = format!(
        "# Search records ({} configurations)\n\nBaseline top-1 {baseline_accuracy:.2} %; within the tolerance: ≥ {threshold:.2} % (✓).\n\n| split | c' | s | mode | quality | top-1 % | mean B | p95 B | seconds | |\n|---|---|---|---|---|---|---|---|---|---|\n",
        records.len()
    );
    for r in records {
        let ok = if r.accuracy + bottlenet_partition::ACCURACY_EPSILON >= threshold { "✓" } else { "" };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.0} | {:.0} | {ok} |\n",
            r.split, r.c_prime, r.s, r.mode.name(), r.quality, r.accuracy, r.mean_bytes, r.p95_bytes, r.seconds
        ));
    }
    out
}

/// Fig. 7's points: the search records of one bottleneck (`which` = split, c', s), by default the
/// one the results keep at their first split.
fn accuracy_points(search: &Path, records: &[SearchRecord], inputs: &ReportInputs, which: Option<&str>) -> Result<Vec<AccuracyPoint>> {
    let (index, c_prime, s) = match which {
        Some(text) => {
            let parts: Vec<u32> = text.split(',').map(|p| p.trim().parse::<u32>()).collect::<std::result::Result<_, _>>().ok().filter(|p: &Vec<u32>| p.len() == 3).with_context(|| format!("--fig7 {text:?}: expected SPLIT,C',S such as 1,1,2"))?;
            (parts[0], parts[1], parts[2])
        }
        None => {
            let first = inputs.results.splits.first().context("the results have no split to draw Fig. 7 for")?;
            let (Some(c_prime), Some(s)) = (first.c_prime, first.s) else {
                anyhow::bail!("the results' {} has no c' / s; Fig. 7 needs them to find its search records", first.name);
            };
            (first.index, c_prime, s)
        }
    };
    let points = AccuracyPoint::from_records(records, index, c_prime, s);
    if points.is_empty() {
        anyhow::bail!("{} has no records of RB{index} with c'={c_prime} s={s} for Fig. 7", search.display());
    }
    Ok(points)
}

pub fn run(args: ReportArgs) -> Result<()> {
    let mut inputs = ReportInputs::load(&args.results, &args.mobile_profile, &args.cloud_profile)
        .context("cannot load the report inputs")?;
    if args.mobile_power_w.is_some() {
        inputs.mobile_power_w = args.mobile_power_w;
    }
    if let Some(tolerance) = args.tolerance {
        inputs.tolerance_points = tolerance;
    }
    if let Some(arch) = args.arch {
        let input = parse_shape(&args.input).context("bad --input")?;
        inputs.feature_sizes = Some(feature_sizes(arch, args.width, input, args.classes)?);
    }
    if let Some(search) = &args.search {
        let records = search_records(search)?;
        inputs.accuracy_points = accuracy_points(search, &records, &inputs, args.fig7.as_deref())?;
        let table = search_table(&records, inputs.results.baseline_accuracy, inputs.tolerance_points);
        std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        let path = args.out.join("search.md");
        bottlenet_train::checkpoint::write_atomic(&path, table.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let files = write_report(&inputs, &args.out)
        .with_context(|| format!("cannot write the report into {}", args.out.display()))?;
    for path in &files.written {
        println!("wrote {}", path.display());
    }
    for skip in &files.skipped {
        println!("skipped {}: {}", skip.item, skip.reason);
    }
    Ok(())
}
