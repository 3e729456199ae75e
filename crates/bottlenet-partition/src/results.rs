//! Training-phase results (Algorithm 1 lines 18–30): for each split the chosen bottleneck's mean
//! compressed frame size `D_j` and its accuracy, plus the two fixed alternatives, as a JSON file.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::candidates::{CLOUD_ONLY, MOBILE_ONLY};
use crate::error::{Error, Result};
use crate::json_file;

/// The results file format this build reads and writes.
pub const RESULTS_FORMAT: u32 = 1;

/// The configuration kept for one split point: the smallest `D_j` whose accuracy was within
/// tolerance (Algorithm 1 line 29).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitResult {
    /// Split name, matched against profile entries (`RB1` … `RB16` for ResNet-50).
    pub name: String,
    /// Position in the network: blocks `1..=index` run on the phone. Unique.
    pub index: u32,
    /// Mean bytes on the wire per image, headers included (`D_j`). Finite, ≥ 0.
    pub bytes: f64,
    /// Top-1 accuracy, percent (0–100).
    pub accuracy: f64,
    /// Reduced channel count `c'` of the bottleneck unit, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_prime: Option<u32>,
    /// Spatial reduction factor `s` of the bottleneck unit, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<u32>,
}

/// Cloud-only: the phone sends the (JPEG-compressed) input image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudOnlyResult {
    /// Mean bytes of the input image as sent. Finite, ≥ 0.
    pub bytes: f64,
    /// Top-1 accuracy of the unmodified network on those images, percent.
    pub accuracy: f64,
    /// JPEG quality of the input image those figures were measured at (the phone must send
    /// that quality for them to hold); absent when unknown (e.g. the paper's figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
}

/// Mobile-only: the phone runs the unmodified network and sends nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileOnlyResult {
    /// Top-1 accuracy, percent.
    pub accuracy: f64,
}

/// Everything the training phase hands to selection for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingResults {
    /// File format version; must equal [`RESULTS_FORMAT`].
    pub format: u32,
    /// Backbone name, e.g. `resnet50`.
    pub model: String,
    /// Data set the accuracies were measured on.
    pub dataset: String,
    /// Accuracy of the unmodified network, percent: the reference for the tolerance.
    pub baseline_accuracy: f64,
    /// Where the figures come from, free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// One entry per split point; names and indices unique.
    pub splits: Vec<SplitResult>,
    pub cloud_only: CloudOnlyResult,
    pub mobile_only: MobileOnlyResult,
}

impl TrainingResults {
    /// Reads and validates a results file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let results: Self = json_file::read(path, "results file")?;
        results.validate().map_err(|e| match e {
            Error::InvalidResults(reason) => {
                Error::InvalidResults(format!("{}: {reason}", path.display()))
            }
            other => other,
        })?;
        Ok(results)
    }

    /// Validates and writes the file atomically (temporary file, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.validate()?;
        json_file::write_json(path.as_ref(), self, "results file")
    }

    /// Checks every invariant stated on the fields.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidResults(reason));
        if self.format != RESULTS_FORMAT {
            return bad(format!(
                "format {} is not supported (this build reads format {RESULTS_FORMAT})",
                self.format
            ));
        }
        check_accuracy("baseline_accuracy", self.baseline_accuracy)?;
        check_accuracy("cloud_only.accuracy", self.cloud_only.accuracy)?;
        check_accuracy("mobile_only.accuracy", self.mobile_only.accuracy)?;
        check_bytes("cloud_only.bytes", self.cloud_only.bytes)?;
        let mut names = HashSet::new();
        let mut indices = HashSet::new();
        for split in &self.splits {
            let name = &split.name;
            if name.trim().is_empty() {
                return bad("a split has an empty name".into());
            }
            if name == CLOUD_ONLY || name == MOBILE_ONLY {
                return bad(format!("{name:?} is reserved and cannot name a split"));
            }
            if !names.insert(name.as_str()) {
                return bad(format!("split {name:?} appears twice"));
            }
            if !indices.insert(split.index) {
                return bad(format!("split index {} appears twice", split.index));
            }
            check_bytes(&format!("split {name:?} bytes"), split.bytes)?;
            check_accuracy(&format!("split {name:?} accuracy"), split.accuracy)?;
        }
        Ok(())
    }
}

fn check_accuracy(what: &str, value: f64) -> Result<()> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidResults(format!(
            "{what} must be a percentage in 0..=100, got {value}"
        )))
    }
}

fn check_bytes(what: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidResults(format!(
            "{what} must be finite and not negative, got {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrainingResults {
        TrainingResults {
            format: RESULTS_FORMAT,
            model: "resnet50".into(),
            dataset: "test".into(),
            baseline_accuracy: 76.1,
            source: String::new(),
            splits: vec![
                SplitResult {
                    name: "RB1".into(),
                    index: 1,
                    bytes: 316.0,
                    accuracy: 74.1,
                    c_prime: Some(1),
                    s: Some(2),
                },
                SplitResult {
                    name: "RB2".into(),
                    index: 2,
                    bytes: 317.0,
                    accuracy: 75.0,
                    c_prime: None,
                    s: None,
                },
            ],
            cloud_only: CloudOnlyResult {
                bytes: 26_766.0,
                accuracy: 76.1,
                quality: None,
            },
            mobile_only: MobileOnlyResult { accuracy: 76.1 },
        }
    }

    fn reason(r: &TrainingResults) -> String {
        match r.validate() {
            Err(Error::InvalidResults(reason)) => reason,
            other => panic!("expected InvalidResults, got {other:?}"),
        }
    }

    #[test]
    fn sample_is_valid_and_round_trips_through_json() {
        let r = sample();
        r.validate().unwrap();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<TrainingResults>(&text).unwrap(), r);
    }

    #[test]
    fn bad_results_are_rejected_with_the_field_named() {
        let mut r = sample();
        r.splits[1].name = "RB1".into();
        assert!(reason(&r).contains("twice"));
        let mut r = sample();
        r.splits[1].index = 1;
        assert!(reason(&r).contains("index 1"));
        let mut r = sample();
        r.splits[0].bytes = -1.0;
        assert!(reason(&r).contains("\"RB1\" bytes"));
        let mut r = sample();
        r.splits[0].accuracy = 101.0;
        assert!(reason(&r).contains("accuracy"));
        let mut r = sample();
        r.splits[0].name = CLOUD_ONLY.into();
        assert!(reason(&r).contains("reserved"));
        let mut r = sample();
        r.baseline_accuracy = f64::NAN;
        assert!(reason(&r).contains("baseline_accuracy"));
    }
}
