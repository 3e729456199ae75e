//! The paper's Table 4 (every split on every network) and Table 5 (mobile-only, cloud-only and
//! the best split per network), computed with Algorithm 1's selection (§2.3) and rendered as
//! Markdown and CSV.
//!
//! Every figure is [`fn@bottlenet_partition::select`]'s: `latency = TM + TU + TC` (ms) and
//! `energy = TM·PM + TU·PU/1000` (mJ), with `TU = 8·bytes/NB` over the bytes that leave the
//! phone ([`bottlenet_partition::wire_bytes`]: `D_j` plus the cloud profile's
//! `wire_overhead_bytes`, when it has one). The "best split" of a network is the first eligible split
//! in selection's ranking for that target; the improvements (×) are cloud-only's (or
//! mobile-only's) figure divided by the best split's, as in §3.2.

use std::fmt::{self, Write as _};

use bottlenet_partition::{
    CLOUD_ONLY, CandidateCosts, CandidateKind, MOBILE_ONLY, Selection, Target, select,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::inputs::ReportInputs;

/// One split's transfer time, latency and phone energy on one network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkCosts {
    pub network: String,
    /// Up-link time `TU`, ms.
    pub tu_ms: f64,
    pub latency_ms: f64,
    pub energy_mj: f64,
    /// The best split on this network for latency.
    pub best_latency: bool,
    /// The best split on this network for energy.
    pub best_energy: bool,
}

/// One split of Table 4.
#[derive(Debug, Clone, PartialEq)]
pub struct Table4Row {
    pub split: String,
    pub index: u32,
    pub c_prime: Option<u32>,
    pub s: Option<u32>,
    /// Bytes that leave the phone per image: `D_j` plus the transport's per-image overhead
    /// ([`bottlenet_partition::wire_bytes`]); `D_j` alone when the cloud profile has none.
    pub bytes: f64,
    /// Top-1 accuracy, percent.
    pub accuracy: f64,
    /// Accuracy within tolerance of the baseline.
    pub eligible: bool,
    /// Phone time `TM`, ms.
    pub tm_ms: f64,
    /// Server time `TC`, ms.
    pub tc_ms: f64,
    /// One entry per network, in the inputs' order.
    pub costs: Vec<NetworkCosts>,
}

/// The three setups Table 5 compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    MobileOnly,
    CloudOnly,
    BottleNet,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MobileOnly => "Mobile-only",
            Self::CloudOnly => "Cloud-only",
            Self::BottleNet => "BottleNet",
        })
    }
}

/// One row of Table 5.
#[derive(Debug, Clone, PartialEq)]
pub struct Table5Row {
    pub setup: Setup,
    /// The network; `None` for mobile-only, which sends nothing.
    pub network: Option<String>,
    /// Candidate name: `mobile-only`, `cloud-only` or the split (`RB1`).
    pub candidate: String,
    /// For BottleNet rows, the targets for which this split is the best; empty otherwise.
    pub targets: Vec<Target>,
    pub bytes: f64,
    pub accuracy: f64,
    pub latency_ms: f64,
    pub energy_mj: f64,
    /// Cloud-only's latency over this row's, on the same network (BottleNet rows).
    pub latency_gain_vs_cloud: Option<f64>,
    pub energy_gain_vs_cloud: Option<f64>,
    /// Mobile-only's latency over this row's (BottleNet rows).
    pub latency_gain_vs_mobile: Option<f64>,
    pub energy_gain_vs_mobile: Option<f64>,
}

/// Algorithm 1's choice among all candidates (cloud-only and mobile-only included).
#[derive(Debug, Clone, PartialEq)]
pub struct OverallChoice {
    pub network: String,
    pub target: Target,
    pub candidate: String,
}

/// Both tables and the parameters they were computed with.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    /// Network names, the column order.
    pub networks: Vec<String>,
    /// `PM`, W.
    pub mobile_power_w: f64,
    /// Lowest eligible accuracy, percent.
    pub accuracy_threshold: f64,
    pub table4: Vec<Table4Row>,
    pub table5: Vec<Table5Row>,
    /// Per network and target.
    pub overall: Vec<OverallChoice>,
}

/// The best eligible split in a ranking, if any.
fn best_split(selection: &Selection) -> Option<&bottlenet_partition::RankedCandidate> {
    selection
        .rows()
        .iter()
        .find(|r| r.eligible && matches!(r.kind, CandidateKind::Split { .. }))
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0 && numerator.is_finite()).then(|| numerator / denominator)
}

impl Tables {
    /// Joins results and profiles and runs selection for every network and both targets.
    pub fn compute(inputs: &ReportInputs) -> Result<Self> {
        inputs.validate()?;
        let costs = CandidateCosts::join(&inputs.results, &inputs.mobile, &inputs.cloud)?;
        let pm = inputs.mobile_power();
        let baseline = inputs.results.baseline_accuracy;
        let mut selections = Vec::with_capacity(inputs.networks.len());
        for named in &inputs.networks {
            let by_target = |target| {
                select(
                    &costs,
                    &named.network,
                    target,
                    pm,
                    baseline,
                    inputs.tolerance_points,
                )
            };
            selections.push((
                named.name.clone(),
                by_target(Target::Latency)?,
                by_target(Target::Energy)?,
            ));
        }
        let missing =
            |name: &str| Error::InvalidInput(format!("selection lost candidate {name:?}"));

        let mut table4 = Vec::new();
        for (cost, split) in costs.iter().filter_map(|c| match c.kind {
            CandidateKind::Split { index } => Some((c, index)),
            _ => None,
        }) {
            let result = inputs.results.splits.iter().find(|s| s.name == cost.name);
            let mut row = Table4Row {
                split: cost.name.clone(),
                index: split,
                c_prime: result.and_then(|r| r.c_prime),
                s: result.and_then(|r| r.s),
                bytes: cost.bytes,
                accuracy: cost.accuracy,
                eligible: false,
                tm_ms: cost.tm_ms,
                tc_ms: cost.tc_ms,
                costs: Vec::new(),
            };
            for (network, latency, energy) in &selections {
                let ranked = latency.get(&cost.name).ok_or_else(|| missing(&cost.name))?;
                row.eligible = ranked.eligible;
                row.costs.push(NetworkCosts {
                    network: network.clone(),
                    tu_ms: ranked.tu_ms,
                    latency_ms: ranked.latency_ms,
                    energy_mj: ranked.energy_mj,
                    best_latency: best_split(latency).is_some_and(|b| b.candidate == cost.name),
                    best_energy: best_split(energy).is_some_and(|b| b.candidate == cost.name),
                });
            }
            table4.push(row);
        }

        let mut table5 = Vec::new();
        let (_, first, _) = selections
            .first()
            .ok_or_else(|| Error::InvalidInput("no networks".into()))?;
        let mobile = first
            .get(MOBILE_ONLY)
            .ok_or_else(|| missing(MOBILE_ONLY))?
            .clone();
        let plain =
            |setup, network: Option<String>, r: &bottlenet_partition::RankedCandidate| Table5Row {
                setup,
                network,
                candidate: r.candidate.clone(),
                targets: Vec::new(),
                bytes: r.bytes,
                accuracy: r.accuracy,
                latency_ms: r.latency_ms,
                energy_mj: r.energy_mj,
                latency_gain_vs_cloud: None,
                energy_gain_vs_cloud: None,
                latency_gain_vs_mobile: None,
                energy_gain_vs_mobile: None,
            };
        table5.push(plain(Setup::MobileOnly, None, &mobile));
        for (network, latency, _) in &selections {
            let cloud = latency.get(CLOUD_ONLY).ok_or_else(|| missing(CLOUD_ONLY))?;
            table5.push(plain(Setup::CloudOnly, Some(network.clone()), cloud));
        }
        let mut overall = Vec::new();
        for (network, latency, energy) in &selections {
            let cloud = latency.get(CLOUD_ONLY).ok_or_else(|| missing(CLOUD_ONLY))?;
            let mut rows: Vec<Table5Row> = Vec::new();
            for (target, selection) in [(Target::Latency, latency), (Target::Energy, energy)] {
                overall.push(OverallChoice {
                    network: network.clone(),
                    target,
                    candidate: selection.chosen().candidate.clone(),
                });
                let Some(best) = best_split(selection) else {
                    continue;
                };
                if let Some(row) = rows.iter_mut().find(|r| r.candidate == best.candidate) {
                    row.targets.push(target);
                    continue;
                }
                let mut row = plain(Setup::BottleNet, Some(network.clone()), best);
                row.targets.push(target);
                row.latency_gain_vs_cloud = ratio(cloud.latency_ms, best.latency_ms);
                row.energy_gain_vs_cloud = ratio(cloud.energy_mj, best.energy_mj);
                row.latency_gain_vs_mobile = ratio(mobile.latency_ms, best.latency_ms);
                row.energy_gain_vs_mobile = ratio(mobile.energy_mj, best.energy_mj);
                rows.push(row);
            }
            table5.extend(rows);
        }
        Ok(Self {
            networks: selections.iter().map(|(n, _, _)| n.clone()).collect(),
            mobile_power_w: pm,
            accuracy_threshold: first.accuracy_threshold(),
            table4,
            table5,
            overall,
        })
    }

    /// The best split's row of Table 5 on `network` for `target`, if any split is eligible.
    pub fn best(&self, network: &str, target: Target) -> Option<&Table5Row> {
        self.table5.iter().find(|r| {
            r.setup == Setup::BottleNet
                && r.network.as_deref() == Some(network)
                && r.targets.contains(&target)
        })
    }

    /// Table 4 as a Markdown table: one row per split, latency and energy per network; the best
    /// split's figures per network in bold.
    pub fn table4_markdown(&self) -> String {
        let mut out = String::new();
        let mut header = String::from("| split | c' | s | bytes | accuracy (%) |");
        let mut rule = String::from("|---|---:|---:|---:|---:|");
        for n in &self.networks {
            let _ = write!(header, " latency {n} (ms) | energy {n} (mJ) |");
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        let opt = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let bold = |on: bool, v: f64| {
            if on {
                format!("**{v:.2}**")
            } else {
                format!("{v:.2}")
            }
        };
        for row in &self.table4 {
            let accuracy = if row.eligible {
                format!("{:.2}", row.accuracy)
            } else {
                format!("{:.2} (below {:.2})", row.accuracy, self.accuracy_threshold)
            };
            let _ = write!(
                out,
                "| {} | {} | {} | {:.0} | {accuracy} |",
                row.split,
                opt(row.c_prime),
                opt(row.s),
                row.bytes
            );
            for c in &row.costs {
                let _ = write!(
                    out,
                    " {} | {} |",
                    bold(c.best_latency, c.latency_ms),
                    bold(c.best_energy, c.energy_mj)
                );
            }
            out.push('\n');
        }
        out
    }

    /// Table 5 as a Markdown table, followed by Algorithm 1's overall choice per network.
    pub fn table5_markdown(&self) -> String {
        let mut out = String::from(
            "| setup | network | location | bytes | accuracy (%) | latency (ms) | energy (mJ) | \
             latency gain vs cloud-only | energy gain vs cloud-only | latency gain vs mobile-only | \
             energy gain vs mobile-only | best for |\n\
             |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let gain = |g: Option<f64>| g.map_or_else(String::new, |g| format!("{g:.1}×"));
        for r in &self.table5 {
            let location = match r.setup {
                Setup::BottleNet => format!("after {}", r.candidate),
                _ => "-".into(),
            };
            let targets: Vec<String> = r.targets.iter().map(Target::to_string).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {location} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
                r.setup,
                r.network.as_deref().unwrap_or("any"),
                r.bytes,
                r.accuracy,
                r.latency_ms,
                r.energy_mj,
                gain(r.latency_gain_vs_cloud),
                gain(r.energy_gain_vs_cloud),
                gain(r.latency_gain_vs_mobile),
                gain(r.energy_gain_vs_mobile),
                targets.join(", "),
            );
        }
        out.push_str(
            "\nAlgorithm 1 over every candidate (cloud-only and mobile-only included):\n\n",
        );
        for n in &self.networks {
            let pick = |target| {
                self.overall
                    .iter()
                    .find(|o| &o.network == n && o.target == target)
                    .map_or("-", |o| o.candidate.as_str())
            };
            let _ = writeln!(
                out,
                "* {n}: {} for latency, {} for energy",
                pick(Target::Latency),
                pick(Target::Energy)
            );
        }
        for n in &self.networks {
            for target in Target::ALL {
                if self.best(n, target).is_none() {
                    let _ = writeln!(
                        out,
                        "* {n}: no split reaches the accuracy threshold for {target}"
                    );
                }
            }
        }
        out
    }

    /// Table 4 in long form: one CSV record per split and network.
    pub fn table4_csv(&self) -> Result<String> {
        #[derive(Serialize)]
        struct Record<'a> {
            split: &'a str,
            index: u32,
            c_prime: Option<u32>,
            s: Option<u32>,
            network: &'a str,
            bytes: f64,
            accuracy: f64,
            eligible: bool,
            tm_ms: f64,
            tu_ms: f64,
            tc_ms: f64,
            latency_ms: f64,
            energy_mj: f64,
            best_latency: bool,
            best_energy: bool,
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        for row in &self.table4 {
            for c in &row.costs {
                writer
                    .serialize(Record {
                        split: &row.split,
                        index: row.index,
                        c_prime: row.c_prime,
                        s: row.s,
                        network: &c.network,
                        bytes: row.bytes,
                        accuracy: row.accuracy,
                        eligible: row.eligible,
                        tm_ms: row.tm_ms,
                        tu_ms: c.tu_ms,
                        tc_ms: row.tc_ms,
                        latency_ms: c.latency_ms,
                        energy_mj: c.energy_mj,
                        best_latency: c.best_latency,
                        best_energy: c.best_energy,
                    })
                    .map_err(|source| csv_error("table4.csv", source))?;
            }
        }
        finish_csv(writer, "table4.csv")
    }

    /// Table 5: one CSV record per row; gains empty where they do not apply.
    pub fn table5_csv(&self) -> Result<String> {
        #[derive(Serialize)]
        struct Record<'a> {
            setup: String,
            network: &'a str,
            candidate: &'a str,
            best_for: String,
            bytes: f64,
            accuracy: f64,
            latency_ms: f64,
            energy_mj: f64,
            latency_gain_vs_cloud_only: Option<f64>,
            energy_gain_vs_cloud_only: Option<f64>,
            latency_gain_vs_mobile_only: Option<f64>,
            energy_gain_vs_mobile_only: Option<f64>,
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        for r in &self.table5 {
            let targets: Vec<String> = r.targets.iter().map(Target::to_string).collect();
            writer
                .serialize(Record {
                    setup: r.setup.to_string(),
                    network: r.network.as_deref().unwrap_or(""),
                    candidate: &r.candidate,
                    best_for: targets.join(";"),
                    bytes: r.bytes,
                    accuracy: r.accuracy,
                    latency_ms: r.latency_ms,
                    energy_mj: r.energy_mj,
                    latency_gain_vs_cloud_only: r.latency_gain_vs_cloud,
                    energy_gain_vs_cloud_only: r.energy_gain_vs_cloud,
                    latency_gain_vs_mobile_only: r.latency_gain_vs_mobile,
                    energy_gain_vs_mobile_only: r.energy_gain_vs_mobile,
                })
                .map_err(|source| csv_error("table5.csv", source))?;
        }
        finish_csv(writer, "table5.csv")
    }
}

fn csv_error(name: &str, source: csv::Error) -> Error {
    Error::Csv {
        path: name.into(),
        source,
    }
}

fn finish_csv(writer: csv::Writer<Vec<u8>>, name: &str) -> Result<String> {
    let bytes = writer
        .into_inner()
        .map_err(|e| csv_error(name, e.into_error().into()))?;
    String::from_utf8(bytes).map_err(|e| Error::InvalidInput(format!("{name} is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests;
