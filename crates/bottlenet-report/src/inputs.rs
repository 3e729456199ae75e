//! What a report is made from: training results, the two device profiles, the networks, and
//! the optional data of the Fig. 6 and Fig. 7 plots.

use std::path::Path;

use bottlenet_partition::{
    CloudOnlyResult, MergeOutcome, Network, NetworkPreset, Profile, SearchMode, SearchRecord,
    TrainingResults,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `PM` when neither the caller nor the mobile profile gives one, W: the paper's mobile-only row,
/// 20.5 mJ in 15.7 ms (DESIGN §3).
pub const DEFAULT_MOBILE_POWER_W: f64 = 1.3;
/// Width and height of every plot, pixels.
pub const DEFAULT_PLOT_SIZE: (u32, u32) = (1024, 640);

/// A network with the name its column carries.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedNetwork {
    pub name: String,
    pub network: Network,
}

impl NamedNetwork {
    /// The paper's three settings (Table 3), in its column order: 3G, 4G, Wi-Fi.
    pub fn paper() -> Vec<Self> {
        NetworkPreset::ALL
            .into_iter()
            .map(|preset| Self {
                name: match preset {
                    NetworkPreset::ThreeG => "3G",
                    NetworkPreset::FourG => "4G",
                    NetworkPreset::WiFi => "Wi-Fi",
                }
                .into(),
                network: preset.network(),
            })
            .collect()
    }
}

/// The size of one split's output feature tensor before any reduction (paper Fig. 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSizeRow {
    /// Split name, as in the results (`RB1`).
    pub split: String,
    /// Bytes as 32-bit floats: `4·C·H·W`.
    pub f32_bytes: u64,
    /// Bytes after 8-bit quantization: `C·H·W`.
    pub u8_bytes: u64,
}

/// Fig. 6's data: the input's size and each split's feature size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSizes {
    /// Bytes of one input image as 8-bit pixels (`3·224·224` for the paper).
    pub input_bytes: u64,
    pub rows: Vec<FeatureSizeRow>,
}

/// One point of Fig. 7: a training mode at one codec quality, evaluated with the codec.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracyPoint {
    pub mode: SearchMode,
    pub quality: u8,
    /// Mean frame bytes per image.
    pub mean_bytes: f64,
    /// Top-1 accuracy, percent.
    pub accuracy: f64,
}

impl AccuracyPoint {
    /// The points of one bottleneck (`split`, `c'`, `s`) among search records: one per mode and
    /// quality, in record order.
    pub fn from_records(
        records: &[SearchRecord],
        split_index: u32,
        c_prime: u32,
        s: u32,
    ) -> Vec<Self> {
        records
            .iter()
            .filter(|r| r.split_index == split_index && r.c_prime == c_prime && r.s == s)
            .map(|r| Self {
                mode: r.mode,
                quality: r.quality,
                mean_bytes: r.mean_bytes,
                accuracy: r.accuracy,
            })
            .collect()
    }
}

/// Everything [`crate::write_report`] needs. Optional parts that are absent skip their plot.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInputs {
    /// `D_j` and accuracy per split, cloud-only and mobile-only figures, the baseline.
    pub results: TrainingResults,
    /// `TM_j` per candidate (role mobile).
    pub mobile: Profile,
    /// `TC_j` per candidate (role cloud).
    pub cloud: Profile,
    /// `PM`, W; when `None`, the mobile profile's `power_w`, else [`DEFAULT_MOBILE_POWER_W`].
    pub mobile_power_w: Option<f64>,
    /// Allowed accuracy loss, points (paper: 2).
    pub tolerance_points: f64,
    /// Columns of the tables and series of the plots; the paper's three by default.
    pub networks: Vec<NamedNetwork>,
    /// Fig. 6 data; no feature-size plot when `None`.
    pub feature_sizes: Option<FeatureSizes>,
    /// Fig. 7 data; no accuracy-against-bytes plot when empty.
    pub accuracy_points: Vec<AccuracyPoint>,
    /// Size of every plot, pixels.
    pub plot_size: (u32, u32),
}

impl ReportInputs {
    /// Inputs with the defaults: tolerance 2 points, the paper's networks, no optional data.
    pub fn new(results: TrainingResults, mobile: Profile, cloud: Profile) -> Self {
        Self {
            results,
            mobile,
            cloud,
            mobile_power_w: None,
            tolerance_points: 2.0,
            networks: NamedNetwork::paper(),
            feature_sizes: None,
            accuracy_points: Vec::new(),
            plot_size: DEFAULT_PLOT_SIZE,
        }
    }

    /// Loads a results file and the two profiles (each validated), with the defaults of [`Self::new`].
    pub fn load(
        results: impl AsRef<Path>,
        mobile: impl AsRef<Path>,
        cloud: impl AsRef<Path>,
    ) -> Result<Self> {
        Ok(Self::new(
            TrainingResults::load(results)?,
            Profile::load(mobile)?,
            Profile::load(cloud)?,
        ))
    }

    /// Inputs from a merged search: its kept configurations become the results (with the given
    /// cloud-only figures), its tolerance is kept, and Fig. 7's points are the records of the
    /// bottleneck kept at the shallowest split (the paper's Fig. 7 is RB1's), all modes and
    /// qualities.
    pub fn from_search(
        outcome: &MergeOutcome,
        model: &str,
        dataset: &str,
        cloud_only: CloudOnlyResult,
        mobile: Profile,
        cloud: Profile,
    ) -> Result<Self> {
        let mut inputs = Self::new(
            outcome.training_results(model, dataset, cloud_only)?,
            mobile,
            cloud,
        );
        inputs.tolerance_points = outcome.tolerance_points;
        if let Some(first) = outcome.chosen.first() {
            inputs.accuracy_points = AccuracyPoint::from_records(
                &outcome.records,
                first.split_index,
                first.c_prime,
                first.s,
            );
        }
        Ok(inputs)
    }

    /// `PM`, W: explicit, else the mobile profile's, else [`DEFAULT_MOBILE_POWER_W`].
    pub fn mobile_power(&self) -> f64 {
        self.mobile_power_w
            .or(self.mobile.power_w)
            .unwrap_or(DEFAULT_MOBILE_POWER_W)
    }

    /// Checks what selection does not: networks named and unique, a plot size that can hold a
    /// chart, finite optional data.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidInput(reason));
        if self.networks.is_empty() {
            return bad("no networks".into());
        }
        for (i, n) in self.networks.iter().enumerate() {
            if n.name.trim().is_empty() {
                return bad("a network has an empty name".into());
            }
            if self.networks[..i].iter().any(|m| m.name == n.name) {
                return bad(format!("network {:?} appears twice", n.name));
            }
            n.network.validate()?;
        }
        let (w, h) = self.plot_size;
        if !(200..=8192).contains(&w) || !(150..=8192).contains(&h) {
            return bad(format!(
                "plot size {w}x{h} is outside 200x150 ..= 8192x8192"
            ));
        }
        if let Some(sizes) = &self.feature_sizes {
            for (i, row) in sizes.rows.iter().enumerate() {
                if sizes.rows[..i].iter().any(|r| r.split == row.split) {
                    return bad(format!(
                        "feature size of split {:?} appears twice",
                        row.split
                    ));
                }
            }
        }
        for p in &self.accuracy_points {
            if !(p.mean_bytes.is_finite() && p.mean_bytes > 0.0) {
                return bad(format!(
                    "Fig. 7 point ({}, q{}): mean bytes must be finite and above 0, got {}",
                    p.mode, p.quality, p.mean_bytes
                ));
            }
            if !(p.accuracy.is_finite() && (0.0..=100.0).contains(&p.accuracy)) {
                return bad(format!(
                    "Fig. 7 point ({}, q{}): accuracy must be a percentage, got {}",
                    p.mode, p.quality, p.accuracy
                ));
            }
        }
        Ok(())
    }
}
