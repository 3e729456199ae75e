//! The training phase of Algorithm 1 (paper §2.3, lines 18–30): train every configuration of a
//! grid (split × c' × s × quality × mode) from the shared baseline, evaluate it with the real
//! codec, append one JSON line per finished configuration; then merge shards, keep per split the
//! fewest-bytes configuration within the tolerance, and write one bundle holding every split.
//! The cloud-only candidate is measured honestly: the lowest JPEG quality of the input image
//! whose accuracy stays within the tolerance.

use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::evaluate::{batch_tensors, count_correct};
use crate::trainer::{RESULT_FILE, RunOptions, TrainResult, load_trained, train};
use bottlenet_codec::photo::{ChromaSampling, PhotoJpeg, decode_photo};
use bottlenet_data::{Augment, DatasetPair};
use bottlenet_model::{BottleNet, Bundle, CodecMode, DeviceChoice, Normalization, SplitStats};
use bottlenet_partition::search::{
    Measurement, MergeOutcome, SearchConfig, SearchRecord, SearchSpec, Shard, append_record, finished_ids_in, merge, record_files, remaining, shard,
};
use bottlenet_partition::{CloudOnlyResult, TrainingResults};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What one `bottlenet search` invocation did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchSummary {
    pub grid: usize,
    pub in_shard: usize,
    pub already_finished: usize,
    pub trained: Vec<SearchRecord>,
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// The experiment of one grid configuration: the base config with the configuration's values.
pub fn configuration_experiment(spec: &SearchSpec, config: &SearchConfig) -> Result<ExperimentConfig> {
    let overrides = vec![
        format!("name=\"{}-{}\"", spec.name, config.id()),
        format!("model.split={}", config.split),
        format!("model.c_prime={}", config.c_prime),
        format!("model.s={}", config.s),
        format!("codec.codec=\"{}\"", config.codec),
        format!("codec.quality={}", config.quality),
        format!("codec.bits={}", config.bits),
        format!("train.mode=\"{}\"", config.mode.name()),
        format!("train.epochs={}", spec.budget.epochs),
        format!("train.init=\"{}\"", spec.baseline.display()),
    ];
    let mut overrides = overrides;
    if let Some(steps) = spec.budget.steps_per_epoch {
        overrides.push(format!("train.steps_per_epoch={steps}"));
    }
    ExperimentConfig::load(&spec.base, &overrides)
}

/// Trains the configurations of `shard` that no shard file in `out` has finished yet.
pub fn run_search(spec: &SearchSpec, which: Shard, out: &Path, data: &DatasetPair, quiet: bool, device: DeviceChoice) -> Result<SearchSummary> {
    let base = ExperimentConfig::load(&spec.base, &[])?;
    let num_blocks = base.model.arch.num_blocks() as u32;
    let grid = spec.grid(num_blocks).map_err(invalid)?;
    let mine = shard(&grid, which);
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    crate::checkpoint::write_atomic(&out.join("search.toml"), spec.to_toml().map_err(invalid)?.as_bytes())?;
    let finished = finished_ids_in(out).map_err(invalid)?;
    let todo = remaining(&mine, &finished);
    let mut summary = SearchSummary { grid: grid.len(), in_shard: mine.len(), already_finished: mine.len() - todo.len(), trained: Vec::new() };
    let records_path = out.join(which.file_name());
    for (n, config) in todo.iter().enumerate() {
        if !quiet {
            eprintln!("[{}/{}] {}", n + 1, todo.len(), config.id());
        }
        let started = Instant::now();
        let experiment = configuration_experiment(spec, config)?;
        let run_dir = out.join("runs").join(config.id());
        let result = train(&experiment, data, &run_dir, &RunOptions { resume: true, quiet, stop_after_epochs: None, device })?;
        let record = config.record(
            Measurement {
                accuracy: 100.0 * result.eval.accuracy,
                mean_bytes: result.eval.mean_bytes,
                p95_bytes: result.eval.p95_bytes,
                seconds: started.elapsed().as_secs_f64(),
            },
            run_dir,
        );
        append_record(&records_path, &record).map_err(invalid)?;
        summary.trained.push(record);
    }
    Ok(summary)
}

/// Reads a training output folder's `result.json`.
pub fn read_result(dir: &Path) -> Result<TrainResult> {
    let path = dir.join(RESULT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| Error::Checkpoint { path, reason: e.to_string() })
}

/// The input-JPEG qualities the honest cloud-only sweep tries.
pub const CLOUD_ONLY_QUALITIES: [u8; 7] = [5, 10, 20, 30, 50, 75, 90];

/// Accuracy and bytes of the cloud-only path at one JPEG quality of the input image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CloudOnlyPoint {
    pub quality: u8,
    /// Top-1, percent.
    pub accuracy: f64,
    /// Mean bytes of one standard JPEG file of the input image (headers included).
    pub mean_bytes: f64,
}

/// Evaluates the unmodified network on JPEG-compressed input photos at each quality: the file
/// the phone would upload in the cloud-only approach (DESIGN §1: a colour JPEG, YCbCr 4:2:0, as a
/// phone's camera stack sends it; grayscale data as a grayscale JPEG). Bytes are whole files.
pub fn cloud_only_sweep(baseline: &BottleNet, data: &DatasetPair, qualities: &[u8], limit: usize) -> Result<Vec<CloudOnlyPoint>> {
    let test = &data.test;
    let [channels, height, width] = test.input_shape();
    let count = limit.min(test.len());
    let norm = test.normalization();
    let device = baseline.device();
    let mut points = Vec::with_capacity(qualities.len());
    for &quality in qualities {
        let codec = PhotoJpeg { quality, sampling: ChromaSampling::Yuv420 };
        let (mut correct, mut bytes) = (0usize, 0usize);
        for start in (0..count).step_by(256) {
            let end = (start + 256).min(count);
            let mut pixels = Vec::with_capacity((end - start) * channels * height * width);
            let mut labels = Vec::with_capacity(end - start);
            for index in start..end {
                let raw = test.raw(index, Augment::Eval)?;
                let file = codec.encode(channels, height, width, &raw.image.planar())?;
                bytes += file.len();
                let decoded = decode_photo(&file, channels, height, width)?;
                let plane = height * width;
                pixels.extend(decoded.iter().enumerate().map(|(i, &p)| norm.apply(i / plane, p)));
                labels.push(raw.label);
            }
            let (images, _) = batch_tensors(pixels, &labels, [end - start, channels, height, width], &device);
            correct += count_correct(baseline.forward(images, CodecMode::None)?, &labels)?;
        }
        points.push(CloudOnlyPoint { quality, accuracy: 100.0 * correct as f64 / count.max(1) as f64, mean_bytes: bytes as f64 / count.max(1) as f64 });
    }
    Ok(points)
}

/// The lowest quality whose accuracy stays within `tolerance_points` of `baseline_accuracy`.
pub fn honest_cloud_only(points: &[CloudOnlyPoint], baseline_accuracy: f64, tolerance_points: f64) -> Option<CloudOnlyPoint> {
    points.iter().filter(|p| p.accuracy + 1e-9 >= baseline_accuracy - tolerance_points).min_by_key(|p| p.quality).copied()
}

/// What `bottlenet search merge` produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeReport {
    pub baseline_accuracy: f64,
    pub chosen: Vec<SearchRecord>,
    pub unmet: Vec<String>,
    pub missing: Vec<String>,
    pub warnings: Vec<String>,
    pub cloud_only: Vec<CloudOnlyPoint>,
    pub bundle: PathBuf,
    pub results: PathBuf,
}

/// Merges every shard file in `out`, writes one bundle with each split's chosen configuration,
/// and `results.json` (the selection phase's input) beside the records.
/// `files` names the record files to merge; empty means every `shard-*.jsonl` in `out`.
///
/// Nothing is written until every step has succeeded: the bundle is assembled and the cloud-only
/// sweep measured in memory first, then the bundle is saved atomically, then the results.
pub fn merge_search(spec: &SearchSpec, out: &Path, files: &[PathBuf], bundle_dir: &Path, data: &DatasetPair, cloud_only_limit: usize, device: DeviceChoice) -> Result<MergeReport> {
    let baseline_result = read_result(&spec.baseline)?;
    let baseline_accuracy = 100.0 * baseline_result.eval.accuracy;
    let files = if files.is_empty() { record_files(out).map_err(invalid)? } else { files.to_vec() };
    if files.is_empty() {
        return Err(Error::Invalid(format!("{} holds no shard-*.jsonl record files; run `bottlenet search` first", out.display())));
    }
    let outcome: MergeOutcome = merge(&files, baseline_accuracy, spec.tolerance_points).map_err(invalid)?;
    let base = ExperimentConfig::load(&spec.base, &[])?;
    let grid = spec.grid(base.model.arch.num_blocks() as u32).map_err(invalid)?;
    if outcome.chosen.is_empty() {
        return Err(Error::Invalid(format!(
            "no configuration reached {:.2}% (baseline {baseline_accuracy:.2}% − {} points); train longer or widen the grid",
            outcome.threshold(),
            spec.tolerance_points
        )));
    }

    let device = device.device()?;
    let model = &baseline_result.model;
    let norm = data.train.normalization();
    let mut bundle = Bundle::new(
        model.arch,
        model.width,
        model.input_shape,
        model.num_classes,
        Normalization { mean: norm.mean().to_vec(), std: norm.std().to_vec() },
        data.train.class_names().to_vec(),
    )?;
    bundle.set_resize(data.train.resize())?;
    for record in &outcome.chosen {
        let net = load_trained(&record.checkpoint, &device)?;
        bundle.add(&net, SplitStats { accuracy: Some(record.accuracy / 100.0), mean_bytes: Some(record.mean_bytes) })?;
    }
    // The baseline is the unsplit network that mobile-only and cloud-only run.
    let baseline_net = load_trained(&spec.baseline, &device)?;
    bundle.set_full(&baseline_net, Some(baseline_result.eval.accuracy))?;

    let sweep = cloud_only_sweep(&baseline_net, data, &CLOUD_ONLY_QUALITIES, cloud_only_limit)?;
    let honest = honest_cloud_only(&sweep, baseline_accuracy, spec.tolerance_points)
        .ok_or_else(|| Error::Invalid("no JPEG quality of the input keeps the baseline's accuracy within the tolerance".into()))?;
    let results: TrainingResults = outcome
        .training_results(model.arch.name(), data.train.name(), CloudOnlyResult { bytes: honest.mean_bytes, accuracy: honest.accuracy, quality: Some(honest.quality) })
        .map_err(invalid)?;
    let results_path = out.join("results.json");
    bundle.save(bundle_dir)?;
    results.save(&results_path).map_err(invalid)?;
    Ok(MergeReport {
        baseline_accuracy,
        chosen: outcome.chosen.clone(),
        unmet: outcome.unmet.iter().map(|u| u.split.clone()).collect(),
        missing: outcome.missing(&grid),
        warnings: outcome.warnings.clone(),
        cloud_only: sweep,
        bundle: bundle_dir.to_path_buf(),
        results: results_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_cloud_only_takes_the_lowest_quality_within_tolerance() {
        let p = |quality, accuracy, mean_bytes| CloudOnlyPoint { quality, accuracy, mean_bytes };
        let points = [p(5, 80.0, 300.0), p(10, 89.0, 350.0), p(20, 90.5, 420.0), p(90, 91.0, 800.0)];
        assert_eq!(honest_cloud_only(&points, 91.0, 2.0).map(|c| c.quality), Some(10));
        assert_eq!(honest_cloud_only(&points, 99.0, 2.0), None);
    }
}

/// The selection phase's input for an existing bundle: each split's accuracy and mean bytes as
/// training measured them (manifest), the baseline's accuracy, and the honest cloud-only
/// candidate (lowest input-JPEG quality within the tolerance, measured on `limit` test images).
pub fn results_from_bundle(bundle_dir: &Path, baseline_dir: &Path, data: &DatasetPair, limit: usize, tolerance_points: f64, device: DeviceChoice) -> Result<(TrainingResults, Vec<CloudOnlyPoint>)> {
    let baseline_result = read_result(baseline_dir)?;
    let baseline_net = load_trained(baseline_dir, &device.device()?)?;
    let baseline = Baseline { network: &baseline_net, accuracy: 100.0 * baseline_result.eval.accuracy, origin: format!("baseline {}", baseline_dir.display()) };
    results_with_baseline(bundle_dir, &baseline, data, limit, tolerance_points)
}

/// The unmodified network the cloud-only and mobile-only candidates run, with its top-1 (percent).
#[derive(Debug)]
pub struct Baseline<'a> {
    pub network: &'a BottleNet,
    pub accuracy: f64,
    /// Where it came from, for the results' `source` line.
    pub origin: String,
}

/// [`results_from_bundle`] with the baseline already loaded (e.g. the bundle's own full network).
pub fn results_with_baseline(bundle_dir: &Path, baseline: &Baseline<'_>, data: &DatasetPair, limit: usize, tolerance_points: f64) -> Result<(TrainingResults, Vec<CloudOnlyPoint>)> {
    let manifest = Bundle::read_manifest(bundle_dir)?;
    let baseline_accuracy = baseline.accuracy;
    let mut splits = Vec::with_capacity(manifest.splits.len());
    for entry in &manifest.splits {
        let (Some(accuracy), Some(bytes)) = (entry.accuracy, entry.mean_bytes) else {
            return Err(Error::Invalid(format!("{}: split {} has no measured accuracy / bytes; evaluate it with training first", bundle_dir.display(), entry.name)));
        };
        splits.push(bottlenet_partition::SplitResult {
            name: entry.name.clone(),
            index: entry.split as u32,
            bytes,
            accuracy: 100.0 * accuracy,
            c_prime: Some(entry.c_prime as u32),
            s: Some(entry.s as u32),
        });
    }
    let sweep = cloud_only_sweep(baseline.network, data, &CLOUD_ONLY_QUALITIES, limit)?;
    let honest = honest_cloud_only(&sweep, baseline_accuracy, tolerance_points)
        .ok_or_else(|| Error::Invalid("no JPEG quality of the input keeps the baseline's accuracy within the tolerance".into()))?;
    let results = TrainingResults {
        format: bottlenet_partition::results::RESULTS_FORMAT,
        model: format!("{}-w{}", manifest.arch.name(), manifest.width),
        dataset: data.train.name().to_string(),
        baseline_accuracy,
        source: format!("bundle {} + {}; cloud-only: input JPEG q{} on {limit} test images", bundle_dir.display(), baseline.origin, honest.quality),
        splits,
        cloud_only: CloudOnlyResult { bytes: honest.mean_bytes, accuracy: honest.accuracy, quality: Some(honest.quality) },
        mobile_only: bottlenet_partition::MobileOnlyResult { accuracy: baseline_accuracy },
    };
    results.validate().map_err(invalid)?;
    Ok((results, sweep))
}
