//! The selection input: one row of costs per candidate, joined from the training results and the
//! two device profiles (Algorithm 1: `D_j` from training, `TM_j` and `TC_j` from profiling).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::profile::{Profile, Role};
use crate::results::TrainingResults;

/// Name of the candidate that sends the input image (JPEG) and runs everything on the server.
pub const CLOUD_ONLY: &str = "cloud-only";
/// Name of the candidate that runs everything on the phone and sends nothing.
pub const MOBILE_ONLY: &str = "mobile-only";

/// What a candidate places where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CandidateKind {
    /// Blocks `1..=index` (plus the reduction unit) on the phone, the rest on the server.
    Split { index: u32 },
    /// Input JPEG up, whole network on the server.
    CloudOnly,
    /// Whole network on the phone, nothing sent.
    MobileOnly,
}

impl fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Split { index } => write!(f, "split after block {index}"),
            Self::CloudOnly => f.write_str(CLOUD_ONLY),
            Self::MobileOnly => f.write_str(MOBILE_ONLY),
        }
    }
}

/// Bytes that leave the phone's network interface for one image of `kind`: the `D_j` of
/// `TU_j = 8·D_j/NB` (Algorithm 1 line 37). A path that sends something (a split, cloud-only)
/// sends its payload, `payload_bytes` (the frame, or the input JPEG), plus the transport's fixed
/// per-image overhead `overhead_bytes` (the cloud profile's `wire_overhead_bytes`); mobile-only
/// sends nothing, whatever the overhead.
///
/// This is the one place the overhead enters: [`CandidateCosts::join`] stores the result in
/// [`CandidateCosts::bytes`], which selection and run-time re-selection both turn into `TU`
/// through [`crate::select::evaluate`].
pub fn wire_bytes(kind: CandidateKind, payload_bytes: f64, overhead_bytes: f64) -> f64 {
    match kind {
        CandidateKind::MobileOnly => 0.0,
        CandidateKind::Split { .. } | CandidateKind::CloudOnly => payload_bytes + overhead_bytes,
    }
}

/// Everything selection needs to know about one candidate, independent of the network.
///
/// Invariants (checked by [`CandidateCosts::validate`]): times and bytes finite and ≥ 0,
/// accuracy finite; a mobile-only candidate has `tc_ms == 0` and `bytes == 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateCosts {
    pub name: String,
    pub kind: CandidateKind,
    /// Phone time `TM`, ms: head + reduction + quantize + encode; for cloud-only the input's
    /// JPEG encode (may be 0); for mobile-only the whole network.
    pub tm_ms: f64,
    /// Server time `TC`, ms: decode + restoration + tail; the whole network for cloud-only;
    /// 0 for mobile-only.
    pub tc_ms: f64,
    /// Bytes that leave the phone per image, the `D_j` of `TU`: the payload plus the transport's
    /// per-image overhead ([`wire_bytes`]); 0 for mobile-only.
    pub bytes: f64,
    /// Top-1 accuracy, percent.
    pub accuracy: f64,
}

impl CandidateCosts {
    /// Joins training results with a mobile and a cloud profile (median times).
    ///
    /// The cloud profile's fixed per-request costs go to every path that uses the server:
    /// `request_overhead_ms` onto `TC`, `wire_overhead_bytes` onto the bytes sent
    /// ([`wire_bytes`]); absent, they count as 0.
    ///
    /// The mobile profile must hold every split, `cloud-only` and `mobile-only`; the cloud
    /// profile every split and `cloud-only`. Every missing entry is listed in one
    /// [`Error::MissingEntries`]. Extra profile entries are ignored. Rows come out as the
    /// splits in index order, then cloud-only, then mobile-only.
    pub fn join(results: &TrainingResults, mobile: &Profile, cloud: &Profile) -> Result<Vec<Self>> {
        results.validate()?;
        mobile.validate()?;
        cloud.validate()?;
        mobile.expect_role(Role::Mobile)?;
        cloud.expect_role(Role::Cloud)?;

        let mut missing = Vec::new();
        let mut time = |profile: &Profile, name: &str| match profile.get(name) {
            Some(entry) => entry.median_ms,
            None => {
                missing.push(format!(
                    "{} profile ({}): {name}",
                    profile.role, profile.device
                ));
                0.0
            }
        };

        // Every request that reaches the server pays the serving stack's fixed cost too, in
        // time on the server and in bytes on the up-link.
        let overhead = cloud.request_overhead_ms.unwrap_or(0.0);
        let wire_overhead = cloud.wire_overhead_bytes.unwrap_or(0.0);
        let mut splits: Vec<_> = results.splits.iter().collect();
        splits.sort_by_key(|s| s.index);
        let mut rows = Vec::with_capacity(splits.len() + 2);
        for split in splits {
            let kind = CandidateKind::Split { index: split.index };
            rows.push(Self {
                name: split.name.clone(),
                kind,
                tm_ms: time(mobile, &split.name),
                tc_ms: time(cloud, &split.name) + overhead,
                bytes: wire_bytes(kind, split.bytes, wire_overhead),
                accuracy: split.accuracy,
            });
        }
        rows.push(Self {
            name: CLOUD_ONLY.into(),
            kind: CandidateKind::CloudOnly,
            tm_ms: time(mobile, CLOUD_ONLY),
            tc_ms: time(cloud, CLOUD_ONLY) + overhead,
            bytes: wire_bytes(CandidateKind::CloudOnly, results.cloud_only.bytes, wire_overhead),
            accuracy: results.cloud_only.accuracy,
        });
        rows.push(Self {
            name: MOBILE_ONLY.into(),
            kind: CandidateKind::MobileOnly,
            tm_ms: time(mobile, MOBILE_ONLY),
            tc_ms: 0.0,
            bytes: wire_bytes(CandidateKind::MobileOnly, 0.0, wire_overhead),
            accuracy: results.mobile_only.accuracy,
        });
        if !missing.is_empty() {
            return Err(Error::MissingEntries(missing));
        }
        Ok(rows)
    }

    /// Checks the invariants stated on the type.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidCandidate {
                name: self.name.clone(),
                reason,
            })
        };
        for (field, value) in [
            ("tm_ms", self.tm_ms),
            ("tc_ms", self.tc_ms),
            ("bytes", self.bytes),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!(
                    "{field} must be finite and not negative, got {value}"
                ));
            }
        }
        if !self.accuracy.is_finite() {
            return bad(format!("accuracy must be finite, got {}", self.accuracy));
        }
        if self.kind == CandidateKind::MobileOnly && (self.tc_ms > 0.0 || self.bytes > 0.0) {
            return bad("mobile-only sends nothing and uses no server time".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{PROFILE_FORMAT, ProfileEntry};
    use crate::results::{CloudOnlyResult, MobileOnlyResult, RESULTS_FORMAT, SplitResult};

    fn results() -> TrainingResults {
        let split = |name: &str, index, bytes| SplitResult {
            name: name.into(),
            index,
            bytes,
            accuracy: 75.0,
            c_prime: None,
            s: None,
        };
        TrainingResults {
            format: RESULTS_FORMAT,
            model: "m".into(),
            dataset: "d".into(),
            baseline_accuracy: 76.0,
            source: String::new(),
            // Deliberately out of index order.
            splits: vec![split("B", 2, 100.0), split("A", 1, 300.0)],
            cloud_only: CloudOnlyResult {
                bytes: 20_000.0,
                accuracy: 76.0,
                quality: None,
            },
            mobile_only: MobileOnlyResult { accuracy: 76.0 },
        }
    }

    fn profile(role: Role, entries: &[(&str, f64)]) -> Profile {
        Profile {
            format: PROFILE_FORMAT,
            device: format!("{role} box"),
            role,
            threads: 1,
            load_level: 0,
            power_w: None,
            request_overhead_ms: None,
            wire_overhead_bytes: None,
            source: String::new(),
            candidates: entries
                .iter()
                .map(|&(name, t)| ProfileEntry {
                    name: name.into(),
                    median_ms: t,
                    p90_ms: t + 1.0,
                    samples: 9,
                })
                .collect(),
        }
    }

    #[test]
    fn join_takes_medians_and_orders_rows() {
        let mobile = profile(
            Role::Mobile,
            &[
                ("A", 1.0),
                ("B", 2.0),
                (CLOUD_ONLY, 0.5),
                (MOBILE_ONLY, 10.0),
                ("X", 9.0),
            ],
        );
        let cloud = profile(Role::Cloud, &[("A", 0.3), ("B", 0.2), (CLOUD_ONLY, 0.4)]);
        let rows = CandidateCosts::join(&results(), &mobile, &cloud).unwrap();
        let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["A", "B", CLOUD_ONLY, MOBILE_ONLY]);
        assert_eq!(rows[0].kind, CandidateKind::Split { index: 1 });
        assert!((rows[0].tm_ms - 1.0).abs() < 1e-12 && (rows[0].tc_ms - 0.3).abs() < 1e-12);
        assert!((rows[0].bytes - 300.0).abs() < 1e-12);
        assert_eq!(rows[2].kind, CandidateKind::CloudOnly);
        assert!((rows[2].tm_ms - 0.5).abs() < 1e-12 && (rows[2].tc_ms - 0.4).abs() < 1e-12);
        assert!((rows[2].bytes - 20_000.0).abs() < 1e-12);
        assert_eq!(rows[3].kind, CandidateKind::MobileOnly);
        assert!(
            (rows[3].tm_ms - 10.0).abs() < 1e-12 && rows[3].tc_ms == 0.0 && rows[3].bytes == 0.0
        );
        for row in &rows {
            row.validate().unwrap();
        }
    }

    #[test]
    fn request_overhead_is_added_to_every_server_path() {
        let mobile = profile(Role::Mobile, &[("A", 1.0), ("B", 2.0), (CLOUD_ONLY, 0.5), (MOBILE_ONLY, 10.0)]);
        let mut cloud = profile(Role::Cloud, &[("A", 0.3), ("B", 0.2), (CLOUD_ONLY, 0.4)]);
        cloud.request_overhead_ms = Some(1.5);
        let rows = CandidateCosts::join(&results(), &mobile, &cloud).unwrap();
        let tc: Vec<f64> = rows.iter().map(|r| r.tc_ms).collect();
        assert_eq!(tc, [1.8, 1.7, 1.9, 0.0]);
        // A phone cannot carry the server's overhead.
        let mut wrong = mobile.clone();
        wrong.request_overhead_ms = Some(1.0);
        assert!(wrong.validate().is_err());
        cloud.request_overhead_ms = Some(f64::NAN);
        assert!(cloud.validate().is_err());
    }

    #[test]
    fn wire_overhead_is_added_to_the_bytes_of_every_path_that_sends() {
        let mobile = profile(Role::Mobile, &[("A", 1.0), ("B", 2.0), (CLOUD_ONLY, 0.5), (MOBILE_ONLY, 10.0)]);
        let mut cloud = profile(Role::Cloud, &[("A", 0.3), ("B", 0.2), (CLOUD_ONLY, 0.4)]);
        cloud.wire_overhead_bytes = Some(64.0);
        let rows = CandidateCosts::join(&results(), &mobile, &cloud).unwrap();
        let bytes: Vec<f64> = rows.iter().map(|r| r.bytes).collect();
        let want = [364.0, 164.0, 20_064.0, 0.0];
        for (got, want) in bytes.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{bytes:?}");
        }
        // Times are untouched, and mobile-only still sends nothing.
        assert!((rows[0].tc_ms - 0.3).abs() < 1e-12);
        rows[3].validate().unwrap();
        assert!(wire_bytes(CandidateKind::MobileOnly, 0.0, 1e6).abs() < f64::EPSILON);
    }

    #[test]
    fn join_lists_every_missing_entry() {
        let mobile = profile(Role::Mobile, &[("A", 1.0), (CLOUD_ONLY, 0.5)]);
        let cloud = profile(Role::Cloud, &[("B", 0.2)]);
        let err = CandidateCosts::join(&results(), &mobile, &cloud).unwrap_err();
        let Error::MissingEntries(missing) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            missing,
            &[
                "cloud profile (cloud box): A",
                "mobile profile (mobile box): B",
                "cloud profile (cloud box): cloud-only",
                "mobile profile (mobile box): mobile-only",
            ]
        );
    }

    #[test]
    fn join_rejects_swapped_profiles() {
        let mobile = profile(Role::Mobile, &[("A", 1.0)]);
        let cloud = profile(Role::Cloud, &[("A", 1.0)]);
        let err = CandidateCosts::join(&results(), &cloud, &mobile).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongRole {
                    expected: Role::Mobile,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn validate_rejects_negative_or_inconsistent_costs() {
        let row = CandidateCosts {
            name: MOBILE_ONLY.into(),
            kind: CandidateKind::MobileOnly,
            tm_ms: 5.0,
            tc_ms: 0.0,
            bytes: 0.0,
            accuracy: 70.0,
        };
        row.validate().unwrap();
        assert!(
            CandidateCosts {
                bytes: 10.0,
                ..row.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            CandidateCosts {
                tm_ms: -1.0,
                ..row.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            CandidateCosts {
                accuracy: f64::NAN,
                ..row
            }
            .validate()
            .is_err()
        );
    }
}
