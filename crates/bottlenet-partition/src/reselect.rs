//! Run-time re-selection of the split (paper §3.4): both ends hold every split's half, and the
//! phone re-runs Algorithm 1's selection phase from what it observes — the up-link throughput
//! it measures, the load or service times the server reports, and whether the server answers.
//!
//! Selection alone would flip between two splits whenever noise moves the inputs across the
//! point where their costs are equal. The [`Reselector`] therefore changes its choice only when
//! the new best beats the current choice by a relative margin (`hysteresis`) on
//! `confirmations` consecutive observations. The one exception is reachability: an unreachable
//! server forces mobile-only at once, and a server that answers again brings back the best
//! split at once, since neither is a matter of noise.
//!
//! The costs are those of [`CandidateCosts::join`]: their `bytes` already hold what leaves the
//! phone per image (payload plus the transport's per-image overhead,
//! [`crate::candidates::wire_bytes`]), and every decision goes through [`select`], so `TU` is
//! the same `8·bytes/NB` as at start-up, with `NB` the measured throughput.

use std::collections::BTreeMap;

use crate::candidates::{CandidateCosts, CandidateKind};
use crate::error::{Error, Result};
use crate::network::Network;
use crate::select::{Selection, Target, select};

/// Policy of a [`Reselector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReselectConfig {
    pub target: Target,
    /// `PM`, W.
    pub mobile_power_w: f64,
    /// Accuracy of the unmodified network, percent.
    pub baseline_accuracy: f64,
    /// Allowed accuracy loss, percentage points.
    pub tolerance_points: f64,
    /// A challenger must cost less than `(1 − hysteresis)` × the current choice's cost.
    /// In `[0, 1)`; default 0.10.
    pub hysteresis: f64,
    /// Consecutive observations on which the same challenger must win by the margin before
    /// the choice changes. ≥ 1; default 3.
    pub confirmations: u32,
    /// Weight of a new throughput sample in the moving average
    /// `t ← w·sample + (1 − w)·t`. In `(0, 1]`; default 0.3.
    pub ewma_weight: f64,
}

impl ReselectConfig {
    pub const DEFAULT_HYSTERESIS: f64 = 0.10;
    pub const DEFAULT_CONFIRMATIONS: u32 = 3;
    pub const DEFAULT_EWMA_WEIGHT: f64 = 0.3;

    /// A policy with the default hysteresis, confirmations and averaging weight.
    pub fn new(
        target: Target,
        mobile_power_w: f64,
        baseline_accuracy: f64,
        tolerance_points: f64,
    ) -> Self {
        Self {
            target,
            mobile_power_w,
            baseline_accuracy,
            tolerance_points,
            hysteresis: Self::DEFAULT_HYSTERESIS,
            confirmations: Self::DEFAULT_CONFIRMATIONS,
            ewma_weight: Self::DEFAULT_EWMA_WEIGHT,
        }
    }

    /// Checks the ranges stated on the fields (selection checks the rest).
    pub fn validate(&self) -> Result<()> {
        if !(self.hysteresis.is_finite() && (0.0..1.0).contains(&self.hysteresis)) {
            return Err(Error::InvalidParameter(format!(
                "hysteresis must be in [0, 1), got {}",
                self.hysteresis
            )));
        }
        if self.confirmations == 0 {
            return Err(Error::InvalidParameter(
                "confirmations must be at least 1".into(),
            ));
        }
        if !(self.ewma_weight.is_finite() && self.ewma_weight > 0.0 && self.ewma_weight <= 1.0) {
            return Err(Error::InvalidParameter(format!(
                "EWMA weight must be in (0, 1], got {}",
                self.ewma_weight
            )));
        }
        Ok(())
    }
}

/// Something the phone learned about the environment.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A measured up-link throughput sample, Mbit/s (> 0); folded into the moving average.
    /// Measure it over the bytes that really left the interface
    /// ([`crate::candidates::wire_bytes`]), the same bytes `TU` is computed from.
    Uplink { mbps: f64 },
    /// The server's load as a factor on service time: every candidate's `TC` becomes its
    /// profiled value times `tc_scale` (≥ 0; 1 = as profiled, at the profile's load level).
    ServerLoad { tc_scale: f64 },
    /// The server's current service time for one candidate, ms (≥ 0). It replaces that
    /// candidate's profiled `TC` (and is not scaled by `ServerLoad`). A report for the
    /// candidate in use also speaks for the whole server: the other candidates' older reports
    /// are dropped, and they cost their profiled `TC` times the larger of `ServerLoad`'s factor
    /// and this report's ratio to its own profiled `TC` (a path the phone stopped using would
    /// otherwise keep the time it had before the server got busy). On mobile-only no path is
    /// in use, and the busiest report of any path speaks for the server that way.
    ServiceTime { candidate: String, tc_ms: f64 },
    /// The last `ServiceTime` of `candidate` is too old to speak for the server (no request
    /// and no status has refreshed it): the candidate costs as if never reported again, and
    /// when that report also set the server's load factor, the factor goes with it. The
    /// phone's policy says when (a phone that left a split because the server was slow would
    /// otherwise never go back). Absence of news is not noise: the best candidate takes over at
    /// once when it beats the current choice by the margin.
    ReportExpired { candidate: String },
    /// The server did not answer (a failed ping or request).
    ServerUnreachable,
    /// The server answered again.
    ServerReachable,
}

/// What the re-selector decided after one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The candidate to use from now on.
    pub chosen: String,
    /// Whether this observation changed the choice.
    pub changed: bool,
}

/// Holds the candidates' costs and the current choice; see the module docs for the policy.
#[derive(Debug, Clone)]
pub struct Reselector {
    costs: Vec<CandidateCosts>,
    network: Network,
    config: ReselectConfig,
    tc_scale: f64,
    /// The latest report of the candidate in use over its profiled `TC`: the server's load as
    /// that path sees it.
    reported_scale: f64,
    /// The candidate whose report set `reported_scale`.
    reported_scale_from: Option<String>,
    service_ms: BTreeMap<String, f64>,
    reachable: bool,
    current: String,
    /// Challenger and the number of consecutive observations it has won by the margin.
    pending: Option<(String, u32)>,
}

impl Reselector {
    /// Starts from the profiled costs on `network` (its throughput seeds the moving average)
    /// with the server reachable; the first choice is plain Algorithm 1 selection.
    /// `costs` must include a mobile-only candidate, the fallback when the server is away.
    pub fn new(
        costs: Vec<CandidateCosts>,
        network: Network,
        config: ReselectConfig,
    ) -> Result<Self> {
        config.validate()?;
        if !costs.iter().any(|c| c.kind == CandidateKind::MobileOnly) {
            return Err(Error::NoMobileOnly);
        }
        let mut reselector = Self {
            costs,
            network,
            config,
            tc_scale: 1.0,
            reported_scale: 0.0,
            reported_scale_from: None,
            service_ms: BTreeMap::new(),
            reachable: true,
            current: String::new(),
            pending: None,
        };
        reselector.current = reselector.selection()?.chosen().candidate.clone();
        Ok(reselector)
    }

    /// The candidate in use.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Whether the candidate in use sends at least as many bytes per image as every other
    /// candidate (cloud-only, usually): then only a slower link, which its own uploads time,
    /// could change the choice.
    pub fn current_sends_most(&self) -> bool {
        let bytes = |name: &str| self.costs.iter().find(|c| c.name == name).map_or(0.0, |c| c.bytes);
        let current = bytes(&self.current);
        current > 0.0 && self.costs.iter().all(|c| c.bytes <= current)
    }

    /// The moving average of the measured up-link throughput, Mbit/s.
    pub fn uplink_mbps(&self) -> f64 {
        self.network.uplink_mbps
    }

    pub fn server_reachable(&self) -> bool {
        self.reachable
    }

    pub fn config(&self) -> &ReselectConfig {
        &self.config
    }

    /// The costs as currently believed: profiled `TM`, and `TC` after server load reports.
    pub fn effective_costs(&self) -> Vec<CandidateCosts> {
        self.costs
            .iter()
            .map(|c| {
                let tc_ms = match (c.kind, self.service_ms.get(&c.name)) {
                    (CandidateKind::MobileOnly, _) => 0.0,
                    (_, Some(&reported)) => reported,
                    (_, None) => c.tc_ms * self.tc_scale.max(self.reported_scale),
                };
                CandidateCosts { tc_ms, ..c.clone() }
            })
            .collect()
    }

    /// Plain selection on the current beliefs (as if the server were reachable), without
    /// hysteresis: what Algorithm 1 would pick right now.
    pub fn selection(&self) -> Result<Selection> {
        select(
            &self.effective_costs(),
            &self.network,
            self.config.target,
            self.config.mobile_power_w,
            self.config.baseline_accuracy,
            self.config.tolerance_points,
        )
    }

    /// Keeps only the candidates `available` says both ends hold (mobile-only always stays:
    /// it needs no server), then chooses afresh by plain selection: at start the phone checks
    /// Algorithm 1's candidates against its bundle and the server's status, so it never picks
    /// a split either one lacks. Returns the names removed.
    pub fn retain(&mut self, available: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let (keep, removed): (Vec<_>, Vec<_>) =
            self.costs.iter().cloned().partition(|c| c.kind == CandidateKind::MobileOnly || available(&c.name));
        let removed: Vec<String> = removed.into_iter().map(|c| c.name).collect();
        if removed.is_empty() {
            return Ok(removed);
        }
        self.costs = keep;
        self.service_ms.retain(|name, _| !removed.contains(name));
        self.pending = None;
        self.current = self.selection()?.chosen().candidate.clone();
        Ok(removed)
    }

    /// Folds one observation in and decides. An invalid observation is rejected and leaves
    /// the state unchanged.
    pub fn observe(&mut self, observation: Observation) -> Result<Decision> {
        match observation {
            Observation::Uplink { mbps } => {
                if !(mbps.is_finite() && mbps > 0.0) {
                    return Err(Error::InvalidParameter(format!(
                        "measured throughput must be finite and above 0 Mbit/s, got {mbps}"
                    )));
                }
                let w = self.config.ewma_weight;
                let average = w * mbps + (1.0 - w) * self.network.uplink_mbps;
                self.network = self.network.with_uplink_mbps(average)?;
            }
            Observation::ServerLoad { tc_scale } => {
                if !(tc_scale.is_finite() && tc_scale >= 0.0) {
                    return Err(Error::InvalidParameter(format!(
                        "server load factor must be finite and not negative, got {tc_scale}"
                    )));
                }
                self.tc_scale = tc_scale;
            }
            Observation::ServiceTime { candidate, tc_ms } => {
                if !self.costs.iter().any(|c| c.name == candidate) {
                    return Err(Error::UnknownCandidate(candidate));
                }
                if !(tc_ms.is_finite() && tc_ms >= 0.0) {
                    return Err(Error::InvalidParameter(format!(
                        "service time of {candidate:?} must be finite and not negative, got {tc_ms}"
                    )));
                }
                let profiled = self
                    .costs
                    .iter()
                    .find(|c| c.name == candidate)
                    .map_or(0.0, |c| c.tc_ms);
                let ratio = (profiled > 0.0).then(|| tc_ms / profiled);
                if candidate == self.current {
                    if let Some(ratio) = ratio {
                        self.reported_scale = ratio;
                        self.reported_scale_from = Some(candidate.clone());
                    }
                    self.service_ms.clear();
                } else if self.current == self.mobile_only_name()
                    && let Some(ratio) = ratio
                    && (ratio > self.reported_scale || self.reported_scale_from.as_deref().is_none_or(|from| from == candidate))
                {
                    // No path in use: a report of any path (a status's, for a split others keep
                    // busy) is the freshest news of the server; the busiest one speaks for it.
                    self.reported_scale = ratio;
                    self.reported_scale_from = Some(candidate.clone());
                }
                self.service_ms.insert(candidate, tc_ms);
            }
            Observation::ReportExpired { candidate } => {
                if !self.costs.iter().any(|c| c.name == candidate) {
                    return Err(Error::UnknownCandidate(candidate));
                }
                self.service_ms.remove(&candidate);
                if self.reported_scale_from.as_deref() == Some(candidate.as_str()) {
                    // The busiest report still standing speaks for the server now, if any.
                    let busiest = self
                        .service_ms
                        .iter()
                        .filter_map(|(name, &tc_ms)| {
                            let profiled = self.costs.iter().find(|c| &c.name == name)?.tc_ms;
                            (profiled > 0.0).then(|| (name.clone(), tc_ms / profiled))
                        })
                        .max_by(|a, b| a.1.total_cmp(&b.1));
                    (self.reported_scale_from, self.reported_scale) = match busiest {
                        Some((name, ratio)) => (Some(name), ratio),
                        None => (None, 0.0),
                    };
                }
                if !self.reachable {
                    return Ok(self.unchanged());
                }
                self.pending = None;
                let selection = self.selection()?;
                let best = selection.chosen();
                let target = self.config.target;
                let beats_current = selection
                    .get(&self.current)
                    .filter(|r| r.eligible)
                    .is_none_or(|current| best.objective(target) < current.objective(target) * (1.0 - self.config.hysteresis));
                if best.candidate != self.current && beats_current {
                    let best = best.candidate.clone();
                    return Ok(self.switch_to(best));
                }
                return Ok(self.unchanged());
            }
            Observation::ServerUnreachable => {
                self.reachable = false;
                self.pending = None;
                let fallback = self.mobile_only_name();
                return Ok(self.switch_to(fallback));
            }
            Observation::ServerReachable => {
                if !self.reachable {
                    self.reachable = true;
                    self.pending = None;
                    let best = self.selection()?.chosen().candidate.clone();
                    return Ok(self.switch_to(best));
                }
            }
        }
        if !self.reachable {
            return Ok(self.unchanged());
        }
        self.reconsider()
    }

    /// Applies the hysteresis rule to a fresh selection.
    fn reconsider(&mut self) -> Result<Decision> {
        let selection = self.selection()?;
        let target = self.config.target;
        let best = selection.chosen();
        if best.candidate == self.current {
            self.pending = None;
            return Ok(self.unchanged());
        }
        let current = selection.get(&self.current).filter(|r| r.eligible);
        let Some(current) = current else {
            // The current choice is no longer a candidate at all: take the best at once.
            let best = best.candidate.clone();
            return Ok(self.switch_to(best));
        };
        if best.objective(target) < current.objective(target) * (1.0 - self.config.hysteresis) {
            let wins = match &self.pending {
                Some((name, wins)) if *name == best.candidate => wins + 1,
                _ => 1,
            };
            if wins >= self.config.confirmations {
                let best = best.candidate.clone();
                return Ok(self.switch_to(best));
            }
            self.pending = Some((best.candidate.clone(), wins));
        } else {
            self.pending = None;
        }
        Ok(self.unchanged())
    }

    fn switch_to(&mut self, name: String) -> Decision {
        self.pending = None;
        let changed = name != self.current;
        self.current = name;
        Decision {
            chosen: self.current.clone(),
            changed,
        }
    }

    fn unchanged(&self) -> Decision {
        Decision {
            chosen: self.current.clone(),
            changed: false,
        }
    }

    fn mobile_only_name(&self) -> String {
        // `new` guarantees a mobile-only candidate exists.
        self.costs
            .iter()
            .find(|c| c.kind == CandidateKind::MobileOnly)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
