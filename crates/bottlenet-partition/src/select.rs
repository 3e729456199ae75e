//! Algorithm 1, selection phase (paper §2.3, lines 40–46): rank every candidate by end-to-end
//! latency or phone energy on a given network, among those accurate enough.
//!
//! For a candidate with phone time `TM` (ms), server time `TC` (ms) and `D` bytes sent:
//! * `TU = 8·D / NB` (ms; [`Network::upload_ms`]), with `D` the bytes that leave the phone's
//!   interface: the payload plus the transport's per-image overhead on every path that sends
//!   something, 0 for mobile-only ([`crate::candidates::wire_bytes`], applied by
//!   [`CandidateCosts::join`]);
//! * latency, ms: `TM + TU + TC`;
//! * phone energy, mJ: `TM·PM + TU·PU / 1000`, with `PM` in W (ms·W = mJ) and
//!   `PU = α_u·t_u + β` in mW (ms·mW = µJ, hence `/1000`). The server's energy is not the
//!   phone's concern and is not counted, as in the paper.
//!
//! Only candidates with `accuracy ≥ baseline − tolerance` are eligible (the paper's 2-point
//! bound, §3.2). Ties on the objective go to fewer bytes, then to the smaller name, so the
//! choice is deterministic.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::candidates::{CandidateCosts, CandidateKind};
use crate::error::{Error, Result};
use crate::network::Network;

/// Slack on the accuracy threshold, in percentage points, so that decimal figures such as
/// 74.1 ≥ 76.1 − 2.0 compare as the reader expects despite binary rounding.
pub const ACCURACY_EPSILON: f64 = 1e-9;

/// What selection minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// End-to-end latency `TM + TU + TC`, ms.
    Latency,
    /// Phone energy `TM·PM + TU·PU`, mJ.
    Energy,
}

impl Target {
    pub const ALL: [Self; 2] = [Self::Latency, Self::Energy];
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Latency => "latency",
            Self::Energy => "energy",
        })
    }
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "latency" => Ok(Self::Latency),
            "energy" => Ok(Self::Energy),
            _ => Err(Error::UnknownTarget(s.to_owned())),
        }
    }
}

/// One candidate's costs on one network. Serializes to exactly the fields
/// `candidate, tm_ms, tu_ms, tc_ms, latency_ms, energy_mj, bytes, accuracy, chosen`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedCandidate {
    /// Candidate name.
    pub candidate: String,
    #[serde(skip)]
    pub kind: CandidateKind,
    /// Phone compute time, ms.
    pub tm_ms: f64,
    /// Up-link transfer time, ms.
    pub tu_ms: f64,
    /// Server compute time, ms.
    pub tc_ms: f64,
    /// `TM + TU + TC`, ms.
    pub latency_ms: f64,
    /// `TM·PM + TU·PU/1000`, mJ.
    pub energy_mj: f64,
    /// Bytes sent per image.
    pub bytes: f64,
    /// Top-1 accuracy, percent.
    pub accuracy: f64,
    /// Accuracy within tolerance of the baseline.
    #[serde(skip)]
    pub eligible: bool,
    /// The one candidate selection returns.
    pub chosen: bool,
}

impl RankedCandidate {
    /// The figure `target` minimises.
    pub fn objective(&self, target: Target) -> f64 {
        match target {
            Target::Latency => self.latency_ms,
            Target::Energy => self.energy_mj,
        }
    }
}

/// The outcome of [`select`]: every candidate in rank order, the chosen one first.
///
/// Rows are the eligible candidates by (objective, bytes, name), then the ineligible ones in the
/// same order. Exactly one row — the first — is chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    target: Target,
    network: Network,
    mobile_power_w: f64,
    accuracy_threshold: f64,
    rows: Vec<RankedCandidate>,
}

impl Selection {
    pub fn target(&self) -> Target {
        self.target
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// `PM`, W.
    pub fn mobile_power_w(&self) -> f64 {
        self.mobile_power_w
    }

    /// Lowest eligible accuracy: baseline − tolerance, percent.
    pub fn accuracy_threshold(&self) -> f64 {
        self.accuracy_threshold
    }

    /// All candidates in rank order.
    pub fn rows(&self) -> &[RankedCandidate] {
        &self.rows
    }

    /// The chosen candidate (always the first row; [`select`] never returns an empty ranking).
    pub fn chosen(&self) -> &RankedCandidate {
        &self.rows[0]
    }

    /// The row of the named candidate.
    pub fn get(&self, name: &str) -> Option<&RankedCandidate> {
        self.rows.iter().find(|r| r.candidate == name)
    }

    /// The rows as a pretty JSON array (the `bottlenet select --json` output).
    pub fn rows_json(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.rows).map_err(|source| Error::Serialize {
            what: "selection rows",
            source,
        })
    }

    /// The ranking as a human-readable table, one line per candidate, the chosen one marked `*`
    /// and ineligible ones marked `x` with the reason in the last column.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "target: {}   network: {:.2} Mbit/s up, P_u {:.1} mW   P_m: {:.3} W   accuracy >= {:.2} %",
            self.target,
            self.network.uplink_mbps,
            self.network.uplink_power_mw(),
            self.mobile_power_w,
            self.accuracy_threshold,
        );
        let width = self
            .rows
            .iter()
            .map(|r| r.candidate.len())
            .max()
            .unwrap_or(0)
            .max(9);
        let _ = writeln!(
            out,
            "rank   {:<width$}  {:>9}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}  {:>6}  note",
            "candidate", "TM ms", "TU ms", "TC ms", "latency ms", "energy mJ", "bytes", "acc %",
        );
        for (i, r) in self.rows.iter().enumerate() {
            let mark = if r.chosen {
                '*'
            } else if r.eligible {
                ' '
            } else {
                'x'
            };
            let note = if r.chosen {
                "chosen".to_owned()
            } else if !r.eligible {
                format!("accuracy below {:.2}", self.accuracy_threshold)
            } else {
                String::new()
            };
            let line = format!(
                "{:>4} {mark} {:<width$}  {:>9.3}  {:>9.3}  {:>9.3}  {:>10.3}  {:>9.3}  {:>9.1}  {:>6.2}  {note}",
                i + 1,
                r.candidate,
                r.tm_ms,
                r.tu_ms,
                r.tc_ms,
                r.latency_ms,
                r.energy_mj,
                r.bytes,
                r.accuracy,
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// One candidate's transfer time, latency and phone energy on `network` (module docs give the
/// formulas and units); `kind`, `eligible` and `chosen` are left for the caller.
///
/// The only place `TU` is computed: [`select`], and through it the run-time
/// [`Reselector`](crate::reselect::Reselector), rank by these figures.
pub fn evaluate(costs: &CandidateCosts, network: &Network, mobile_power_w: f64) -> RankedCandidate {
    let tu_ms = network.upload_ms(costs.bytes);
    RankedCandidate {
        candidate: costs.name.clone(),
        kind: costs.kind,
        tm_ms: costs.tm_ms,
        tu_ms,
        tc_ms: costs.tc_ms,
        latency_ms: costs.tm_ms + tu_ms + costs.tc_ms,
        energy_mj: costs.tm_ms * mobile_power_w + tu_ms * network.uplink_power_mw() / 1e3,
        bytes: costs.bytes,
        accuracy: costs.accuracy,
        eligible: false,
        chosen: false,
    }
}

/// Algorithm 1's selection: ranks `costs` on `network` for `target`.
///
/// `mobile_power_w` is `PM` in watts; `baseline_accuracy` and `tolerance_points` are in
/// percent (points). Fails on invalid inputs (duplicate names, negative times, non-finite or
/// negative parameters), on an empty list, and when no candidate is accurate enough.
pub fn select(
    costs: &[CandidateCosts],
    network: &Network,
    target: Target,
    mobile_power_w: f64,
    baseline_accuracy: f64,
    tolerance_points: f64,
) -> Result<Selection> {
    network.validate()?;
    if !(mobile_power_w.is_finite() && mobile_power_w >= 0.0) {
        return Err(Error::InvalidParameter(format!(
            "mobile power must be a finite number of watts, not negative; got {mobile_power_w}"
        )));
    }
    if !baseline_accuracy.is_finite() {
        return Err(Error::InvalidParameter(format!(
            "baseline accuracy must be finite, got {baseline_accuracy}"
        )));
    }
    if !(tolerance_points.is_finite() && tolerance_points >= 0.0) {
        return Err(Error::InvalidParameter(format!(
            "accuracy tolerance must be finite and not negative, got {tolerance_points}"
        )));
    }
    if costs.is_empty() {
        return Err(Error::NoCandidates);
    }
    for (i, c) in costs.iter().enumerate() {
        c.validate()?;
        if costs[..i].iter().any(|d| d.name == c.name) {
            return Err(Error::InvalidParameter(format!(
                "candidate {:?} appears twice",
                c.name
            )));
        }
    }

    let threshold = baseline_accuracy - tolerance_points;
    let mut rows: Vec<RankedCandidate> = costs
        .iter()
        .map(|c| {
            let mut row = evaluate(c, network, mobile_power_w);
            row.eligible = c.accuracy >= threshold - ACCURACY_EPSILON;
            row
        })
        .collect();
    if !rows.iter().any(|r| r.eligible) {
        let best = rows
            .iter()
            .map(|r| r.accuracy)
            .fold(f64::NEG_INFINITY, f64::max);
        return Err(Error::NoEligible { threshold, best });
    }
    rows.sort_by(|a, b| rank_order(a, b, target));
    rows[0].chosen = true;
    Ok(Selection {
        target,
        network: *network,
        mobile_power_w,
        accuracy_threshold: threshold,
        rows,
    })
}

/// Eligible before ineligible, then smaller objective, fewer bytes, smaller name.
fn rank_order(a: &RankedCandidate, b: &RankedCandidate, target: Target) -> Ordering {
    b.eligible
        .cmp(&a.eligible)
        .then_with(|| a.objective(target).total_cmp(&b.objective(target)))
        .then_with(|| a.bytes.total_cmp(&b.bytes))
        .then_with(|| a.candidate.cmp(&b.candidate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::NetworkPreset;

    fn cost(
        name: &str,
        kind: CandidateKind,
        tm_ms: f64,
        tc_ms: f64,
        bytes: f64,
        accuracy: f64,
    ) -> CandidateCosts {
        CandidateCosts {
            name: name.into(),
            kind,
            tm_ms,
            tc_ms,
            bytes,
            accuracy,
        }
    }

    fn split(
        name: &str,
        index: u32,
        tm_ms: f64,
        tc_ms: f64,
        bytes: f64,
        accuracy: f64,
    ) -> CandidateCosts {
        cost(
            name,
            CandidateKind::Split { index },
            tm_ms,
            tc_ms,
            bytes,
            accuracy,
        )
    }

    #[test]
    fn numbers_follow_the_formulas_with_their_units() {
        let net = Network::preset(NetworkPreset::FourG);
        let c = [split("A", 1, 2.0, 0.5, 1000.0, 75.0)];
        let sel = select(&c, &net, Target::Latency, 1.5, 75.0, 0.0).unwrap();
        let r = sel.chosen();
        let tu = 8.0 * 1000.0 / 5.85e6 * 1e3; // ms
        assert!((r.tu_ms - tu).abs() < 1e-12);
        assert!((r.latency_ms - (2.0 + tu + 0.5)).abs() < 1e-12);
        // 2 ms at 1.5 W = 3 mJ; tu ms at P_u mW = tu·P_u µJ.
        let pu = 438.39 * 5.85 + 1288.04;
        assert!((r.energy_mj - (3.0 + tu * pu * 1e-3)).abs() < 1e-12);
        assert!(r.chosen && r.eligible);
    }

    #[test]
    fn latency_and_energy_can_disagree() {
        // A: fast but heavy on the phone; B: light on the phone, slow on the server.
        let net = Network::preset(NetworkPreset::WiFi);
        let c = [
            split("A", 1, 1.0, 0.0, 100.0, 76.0),
            split("B", 2, 0.1, 5.0, 100.0, 76.0),
        ];
        let lat = select(&c, &net, Target::Latency, 10.0, 76.0, 2.0).unwrap();
        let en = select(&c, &net, Target::Energy, 10.0, 76.0, 2.0).unwrap();
        assert_eq!(lat.chosen().candidate, "A");
        assert_eq!(en.chosen().candidate, "B");
    }

    #[test]
    fn inaccurate_candidates_are_ranked_last_and_never_chosen() {
        let net = Network::preset(NetworkPreset::ThreeG);
        let c = [
            split("fast-but-wrong", 1, 0.1, 0.1, 10.0, 60.0),
            split("ok", 2, 5.0, 1.0, 200.0, 74.1),
            cost(
                "mobile-only",
                CandidateKind::MobileOnly,
                15.0,
                0.0,
                0.0,
                76.1,
            ),
        ];
        let sel = select(&c, &net, Target::Latency, 1.3, 76.1, 2.0).unwrap();
        let names: Vec<_> = sel.rows().iter().map(|r| r.candidate.as_str()).collect();
        assert_eq!(names, ["ok", "mobile-only", "fast-but-wrong"]);
        assert!(!sel.rows()[2].eligible && !sel.rows()[2].chosen);
        assert_eq!(sel.rows().iter().filter(|r| r.chosen).count(), 1);
        assert!(sel.render_table().contains("accuracy below 74.10"));
    }

    #[test]
    fn ties_go_to_fewer_bytes_then_name() {
        // A power model of 0 mW and PM = 0 W make every energy exactly 0: a pure tie.
        let free = Network::new(1.0, 0.0, 0.0).unwrap();
        let c = [
            split("Z", 1, 1.0, 1.0, 50.0, 76.0),
            split("Y", 2, 3.0, 1.0, 60.0, 76.0),
        ];
        let sel = select(&c, &free, Target::Energy, 0.0, 76.0, 0.0).unwrap();
        assert_eq!(sel.chosen().candidate, "Z", "{}", sel.render_table());
        let c = [
            split("Z", 1, 1.0, 1.0, 50.0, 76.0),
            split("Y", 2, 3.0, 1.0, 50.0, 76.0),
        ];
        let sel = select(&c, &free, Target::Energy, 0.0, 76.0, 0.0).unwrap();
        assert_eq!(sel.chosen().candidate, "Y", "{}", sel.render_table());
        // Input order does not matter.
        let reversed = [c[1].clone(), c[0].clone()];
        assert_eq!(
            select(&reversed, &free, Target::Energy, 0.0, 76.0, 0.0).unwrap(),
            sel
        );
    }

    #[test]
    fn boundary_accuracy_is_eligible() {
        let net = Network::preset(NetworkPreset::WiFi);
        let c = [split("RB1", 1, 1.0, 0.0, 316.0, 74.1)];
        assert!(select(&c, &net, Target::Latency, 1.3, 76.1, 2.0).is_ok());
        let err = select(&c, &net, Target::Latency, 1.3, 76.1, 1.9).unwrap_err();
        assert!(matches!(err, Error::NoEligible { .. }), "{err:?}");
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let net = Network::preset(NetworkPreset::WiFi);
        let a = split("A", 1, 1.0, 0.0, 10.0, 76.0);
        assert!(matches!(
            select(&[], &net, Target::Latency, 1.0, 76.0, 2.0),
            Err(Error::NoCandidates)
        ));
        assert!(
            select(
                &[a.clone(), a.clone()],
                &net,
                Target::Latency,
                1.0,
                76.0,
                2.0
            )
            .is_err()
        );
        assert!(
            select(
                std::slice::from_ref(&a),
                &net,
                Target::Latency,
                f64::NAN,
                76.0,
                2.0
            )
            .is_err()
        );
        assert!(
            select(
                std::slice::from_ref(&a),
                &net,
                Target::Latency,
                1.0,
                76.0,
                -1.0
            )
            .is_err()
        );
        let neg = CandidateCosts { tc_ms: -1.0, ..a };
        assert!(matches!(
            select(&[neg], &net, Target::Latency, 1.0, 76.0, 2.0),
            Err(Error::InvalidCandidate { .. })
        ));
    }

    #[test]
    fn rows_serialize_with_exactly_the_agreed_fields() {
        let net = Network::preset(NetworkPreset::WiFi);
        let c = [split("A", 1, 1.0, 0.0, 10.0, 76.0)];
        let sel = select(&c, &net, Target::Latency, 1.0, 76.0, 2.0).unwrap();
        let value: serde_json::Value = serde_json::from_str(&sel.rows_json().unwrap()).unwrap();
        let row = value.as_array().unwrap()[0].as_object().unwrap();
        let mut keys: Vec<_> = row.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = [
            "candidate",
            "tm_ms",
            "tu_ms",
            "tc_ms",
            "latency_ms",
            "energy_mj",
            "bytes",
            "accuracy",
            "chosen",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(row["candidate"], "A");
        assert_eq!(row["chosen"], true);
    }

    #[test]
    fn targets_parse() {
        for t in Target::ALL {
            assert_eq!(t.to_string().parse::<Target>().ok(), Some(t));
        }
        assert!(matches!(
            "speed".parse::<Target>(),
            Err(Error::UnknownTarget(_))
        ));
    }
}
