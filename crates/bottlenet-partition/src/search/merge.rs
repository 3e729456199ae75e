//! The merge of every shard's records (Algorithm 1 line 29): exact repeats dropped, conflicting
//! ones rejected, and per split the configuration with the fewest mean bytes `D_j` among those
//! within tolerance of the baseline kept as the selection input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::records::{SearchRecord, read_records};
use super::spec::SearchConfig;
use super::split_name;
use crate::error::{Error, Result};
use crate::results::{
    CloudOnlyResult, MobileOnlyResult, RESULTS_FORMAT, SplitResult, TrainingResults,
};
use crate::select::ACCURACY_EPSILON;

/// A split for which no configuration reached the accuracy threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmetSplit {
    pub split: String,
    pub split_index: u32,
    /// Configurations tried at this split.
    pub configurations: usize,
    /// Best accuracy among them, percent.
    pub best_accuracy: f64,
}

/// The merged search: every distinct record, the one kept per split, and what fell short.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// Accuracy of the unmodified network, percent.
    pub baseline_accuracy: f64,
    /// Allowed loss, points; eligible means `accuracy ≥ baseline − tolerance` (with
    /// [`ACCURACY_EPSILON`] slack, as in selection).
    pub tolerance_points: f64,
    /// Every distinct record, in grid order.
    pub records: Vec<SearchRecord>,
    /// Per split, in index order, the eligible record with the fewest mean bytes (ties: smaller
    /// p95 bytes, then id) — Algorithm 1 line 29.
    pub chosen: Vec<SearchRecord>,
    /// Splits with records but no eligible one, in index order.
    pub unmet: Vec<UnmetSplit>,
    /// Records dropped as exact repeats of another (same id and results).
    pub duplicates: usize,
    /// Torn lines skipped while reading.
    pub warnings: Vec<String>,
}

impl MergeOutcome {
    /// The accuracy a configuration needs, percent.
    pub fn threshold(&self) -> f64 {
        self.baseline_accuracy - self.tolerance_points
    }

    /// Ids of `grid` that no record covers (configurations that never finished).
    pub fn missing(&self, grid: &[SearchConfig]) -> Vec<String> {
        let done: BTreeSet<&str> = self.records.iter().map(|r| r.id.as_str()).collect();
        grid.iter()
            .map(SearchConfig::id)
            .filter(|id| !done.contains(id.as_str()))
            .collect()
    }

    /// The selection input (the partition crate's results file): one [`SplitResult`] per chosen
    /// record; splits without an eligible configuration are left out. Mobile-only runs the
    /// unmodified network, so its accuracy is the baseline's; cloud-only's bytes and accuracy
    /// (the input JPEG) come from the caller.
    pub fn training_results(
        &self,
        model: &str,
        dataset: &str,
        cloud_only: CloudOnlyResult,
    ) -> Result<TrainingResults> {
        let results = TrainingResults {
            format: RESULTS_FORMAT,
            model: model.into(),
            dataset: dataset.into(),
            baseline_accuracy: self.baseline_accuracy,
            source: format!(
                "bottlenet search merge: {} configurations, {} splits kept, tolerance {} points",
                self.records.len(),
                self.chosen.len(),
                self.tolerance_points
            ),
            splits: self
                .chosen
                .iter()
                .map(|r| SplitResult {
                    name: r.split.clone(),
                    index: r.split_index,
                    bytes: r.mean_bytes,
                    accuracy: r.accuracy,
                    c_prime: Some(r.c_prime),
                    s: Some(r.s),
                })
                .collect(),
            cloud_only,
            mobile_only: MobileOnlyResult {
                accuracy: self.baseline_accuracy,
            },
        };
        results.validate()?;
        Ok(results)
    }
}

/// Reads every record file and merges them ([`merge_records`]); torn last lines are skipped and
/// reported in [`MergeOutcome::warnings`].
pub fn merge(
    record_files: &[impl AsRef<Path>],
    baseline_accuracy: f64,
    tolerance_points: f64,
) -> Result<MergeOutcome> {
    if record_files.is_empty() {
        return Err(Error::InvalidParameter("no record files to merge".into()));
    }
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for path in record_files {
        let file = read_records(path)?;
        records.extend(file.records);
        warnings.extend(file.warnings);
    }
    let mut outcome = merge_records(records, baseline_accuracy, tolerance_points)?;
    outcome.warnings = warnings;
    Ok(outcome)
}

/// Merges records from any number of shards: repeats with the same id must agree on everything
/// but `seconds` (they are then counted once), otherwise the merge fails naming the id. Then,
/// per split, keeps the eligible record with the fewest mean bytes (ties: smaller p95, then id).
pub fn merge_records(
    records: impl IntoIterator<Item = SearchRecord>,
    baseline_accuracy: f64,
    tolerance_points: f64,
) -> Result<MergeOutcome> {
    if !(baseline_accuracy.is_finite() && (0.0..=100.0).contains(&baseline_accuracy)) {
        return Err(Error::InvalidParameter(format!(
            "baseline accuracy must be a percentage, got {baseline_accuracy}"
        )));
    }
    if !(tolerance_points.is_finite() && tolerance_points >= 0.0) {
        return Err(Error::InvalidParameter(format!(
            "accuracy tolerance must be finite and not negative, got {tolerance_points}"
        )));
    }
    let mut by_id: BTreeMap<String, SearchRecord> = BTreeMap::new();
    let mut duplicates = 0;
    for record in records {
        record.validate()?;
        match by_id.get(&record.id) {
            Some(kept) if kept.same_result(&record) => duplicates += 1,
            Some(kept) => {
                return Err(Error::InvalidResults(format!(
                    "configuration {:?} has two different records (accuracy {} vs {}, mean bytes {} vs {}, checkpoint {} vs {}); \
                     remove one before merging",
                    record.id,
                    kept.accuracy,
                    record.accuracy,
                    kept.mean_bytes,
                    record.mean_bytes,
                    kept.checkpoint.display(),
                    record.checkpoint.display()
                )));
            }
            None => {
                by_id.insert(record.id.clone(), record);
            }
        }
    }
    let mut records: Vec<SearchRecord> = by_id.into_values().collect();
    records.sort_by(SearchRecord::grid_order);

    let threshold = baseline_accuracy - tolerance_points;
    let mut per_split: BTreeMap<u32, Vec<&SearchRecord>> = BTreeMap::new();
    for record in &records {
        per_split
            .entry(record.split_index)
            .or_default()
            .push(record);
    }
    let mut chosen = Vec::new();
    let mut unmet = Vec::new();
    for (index, group) in per_split {
        let best = group
            .iter()
            .filter(|r| r.accuracy >= threshold - ACCURACY_EPSILON)
            .min_by(|a, b| {
                a.mean_bytes
                    .total_cmp(&b.mean_bytes)
                    .then_with(|| a.p95_bytes.total_cmp(&b.p95_bytes))
                    .then_with(|| a.id.cmp(&b.id))
            });
        match best {
            Some(record) => chosen.push((*record).clone()),
            None => unmet.push(UnmetSplit {
                split: split_name(index),
                split_index: index,
                configurations: group.len(),
                best_accuracy: group
                    .iter()
                    .map(|r| r.accuracy)
                    .fold(f64::NEG_INFINITY, f64::max),
            }),
        }
    }
    Ok(MergeOutcome {
        baseline_accuracy,
        tolerance_points,
        records,
        chosen,
        unmet,
        duplicates,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::search::fixtures::rec;

    #[test]
    fn merge_keeps_fewest_bytes_within_tolerance_per_split() {
        let records = vec![
            rec(1, 1, 20, 73.0, 100.0, 120.0), // too inaccurate
            rec(1, 2, 20, 74.5, 200.0, 250.0),
            rec(1, 2, 10, 74.0, 200.0, 240.0), // same mean, smaller p95: wins
            rec(2, 1, 20, 60.0, 50.0, 60.0),   // split 2: nothing eligible
            rec(2, 2, 20, 70.0, 80.0, 90.0),
        ];
        let out = merge_records(records, 76.0, 2.0).unwrap();
        assert_eq!(out.chosen.len(), 1);
        assert_eq!(out.chosen[0].id, "RB1-c2-s2-q10");
        assert_eq!(out.unmet.len(), 1);
        assert_eq!(out.unmet[0].split, "RB2");
        assert_eq!(out.unmet[0].configurations, 2);
        assert!((out.unmet[0].best_accuracy - 70.0).abs() < 1e-12);
        // Records come back in grid order.
        let ids: Vec<_> = out.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "RB1-c1-s2-q20",
                "RB1-c2-s2-q10",
                "RB1-c2-s2-q20",
                "RB2-c1-s2-q20",
                "RB2-c2-s2-q20"
            ]
        );
    }

    #[test]
    fn ties_on_bytes_and_p95_go_to_the_smaller_id() {
        let out = merge_records(
            vec![
                rec(1, 2, 20, 76.0, 100.0, 100.0),
                rec(1, 1, 20, 76.0, 100.0, 100.0),
            ],
            76.0,
            0.0,
        )
        .unwrap();
        assert_eq!(out.chosen[0].id, "RB1-c1-s2-q20");
    }

    #[test]
    fn boundary_accuracy_is_eligible() {
        let out = merge_records(vec![rec(1, 1, 20, 74.1, 316.0, 330.0)], 76.1, 2.0).unwrap();
        assert_eq!(out.chosen.len(), 1);
    }

    #[test]
    fn duplicates_are_dropped_and_conflicts_rejected() {
        let a = rec(1, 1, 20, 75.0, 100.0, 110.0);
        let mut slower = a.clone();
        slower.seconds = 99.0;
        let out = merge_records(vec![a.clone(), slower], 76.0, 2.0).unwrap();
        assert_eq!((out.records.len(), out.duplicates), (1, 1));
        let mut other = a.clone();
        other.accuracy = 74.5;
        let err = merge_records(vec![a, other], 76.0, 2.0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RB1-c1-s2-q20") && err.contains("two different records"),
            "{err}"
        );
    }

    #[test]
    fn training_results_carry_the_chosen_configurations() {
        let out = merge_records(
            vec![
                rec(3, 2, 20, 75.0, 150.0, 160.0),
                rec(1, 1, 20, 74.5, 300.0, 310.0),
            ],
            76.0,
            2.0,
        )
        .unwrap();
        let results = out
            .training_results(
                "resnet50",
                "mini",
                CloudOnlyResult {
                    bytes: 26_766.0,
                    accuracy: 75.9,
                    quality: None,
                },
            )
            .unwrap();
        let names: Vec<_> = results.splits.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["RB1", "RB3"]);
        assert_eq!(results.splits[1].c_prime, Some(2));
        assert_eq!(results.splits[1].s, Some(2));
        assert!((results.splits[1].bytes - 150.0).abs() < 1e-12);
        assert!((results.mobile_only.accuracy - 76.0).abs() < 1e-12);
        assert!((results.baseline_accuracy - 76.0).abs() < 1e-12);
    }

    #[test]
    fn bad_merge_parameters_are_rejected() {
        assert!(merge_records(Vec::new(), f64::NAN, 2.0).is_err());
        assert!(merge_records(Vec::new(), 76.0, -1.0).is_err());
        assert!(merge(&[] as &[PathBuf], 76.0, 2.0).is_err());
    }
}
