//! Measured cost profiles (Algorithm 1, profiling phase): how long each candidate's share of the
//! network takes on one device at one load level, stored as a JSON data file.
//!
//! A *mobile* profile holds `TM_j` for each split `j` (head + reduction unit + quantize +
//! encode, §2.3), the JPEG-encode time of the input image under `cloud-only`, and the whole
//! network under `mobile-only`. A *cloud* profile holds `TC_j` (decode + restoration unit +
//! tail) for each split and the whole network under `cloud-only`.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json_file;

/// The profile file format this build reads and writes.
pub const PROFILE_FORMAT: u32 = 1;

/// Which end of the split a profile was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The phone: its entries are `TM_j`.
    Mobile,
    /// The server: its entries are `TC_j`.
    Cloud,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mobile => "mobile",
            Self::Cloud => "cloud",
        })
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mobile" => Ok(Self::Mobile),
            "cloud" => Ok(Self::Cloud),
            _ => Err(Error::InvalidProfile(format!(
                "unknown role {s:?}; expected mobile or cloud"
            ))),
        }
    }
}

/// The timing of one candidate on one device: a summary of `samples` repeated runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileEntry {
    /// Candidate name, as in the results file: a split (`RB1`), `cloud-only` or `mobile-only`.
    pub name: String,
    /// Median time, ms. Selection uses this figure. Finite, ≥ 0.
    pub median_ms: f64,
    /// 90th-percentile time, ms. Finite, ≥ `median_ms`.
    pub p90_ms: f64,
    /// Number of timed runs; 0 marks a figure that was derived rather than measured
    /// (the paper profiles under `profiles/`).
    pub samples: u32,
}

/// One device's measured (or derived) times for every candidate, at one load level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// File format version; must equal [`PROFILE_FORMAT`].
    pub format: u32,
    /// Free-text description of the device and software (board, CPU/GPU, backend).
    pub device: String,
    /// Which end of the split these times belong to.
    pub role: Role,
    /// Inference threads the backend used (≥ 1; a GPU backend records 1).
    pub threads: u32,
    /// Load level `K_mobile` or `K_cloud` of Algorithm 1 while measuring: requests kept in flight
    /// besides the timed one (0 = idle, the paper's "no congestion" setting of Table 4).
    pub load_level: u32,
    /// Mean power drawn by the phone while computing, W (`PM` of Algorithm 1). Only meaningful
    /// in a mobile profile; finite and > 0 when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// Fixed cost of one request through the serving stack beyond `TC`, ms: the RPC framing,
    /// transport round trip on the server's host, queueing and thread hand-offs, measured with
    /// a real client. Only in a cloud profile; added to `TC` of every candidate that uses the
    /// server. Not in the paper's model (its profiles leave it out and reproduce exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_overhead_ms: Option<f64>,
    /// Bytes the transport adds to every image that leaves the phone, beyond the payload (a
    /// split's frame, cloud-only's JPEG): message and RPC framing, HTTP/2 and TCP/IP headers,
    /// counted on the wire of a real client's requests. Algorithm 1 then sends
    /// `D_j + wire_overhead_bytes` on every path that uses the server
    /// ([`crate::candidates::wire_bytes`]) and nothing on mobile-only.
    ///
    /// Only in a cloud profile, beside `request_overhead_ms`: both are fixed costs of one
    /// request through the protocol the server speaks, paid by every phone that talks to it,
    /// and both are measured in the same run, a real client against the server; the mobile
    /// profile is timed without a server. Finite and ≥ 0 when present. Not in the paper's
    /// model (its profiles leave it out and reproduce exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_overhead_bytes: Option<f64>,
    /// Where the figures come from (tool and version, or a derivation), free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// One entry per candidate; names are unique.
    pub candidates: Vec<ProfileEntry>,
}

impl Profile {
    /// Reads and validates a profile file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let profile: Self = json_file::read(path, "profile")?;
        profile.validate().map_err(|e| match e {
            Error::InvalidProfile(reason) => {
                Error::InvalidProfile(format!("{}: {reason}", path.display()))
            }
            other => other,
        })?;
        Ok(profile)
    }

    /// Validates and writes the profile atomically (temporary file, then rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.validate()?;
        json_file::write_json(path.as_ref(), self, "profile")
    }

    /// Checks every invariant stated on the fields.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidProfile(reason));
        if self.format != PROFILE_FORMAT {
            return bad(format!(
                "format {} is not supported (this build reads format {PROFILE_FORMAT})",
                self.format
            ));
        }
        if self.device.trim().is_empty() {
            return bad("device description is empty".into());
        }
        if self.threads == 0 {
            return bad("threads must be at least 1".into());
        }
        if let Some(overhead) = self.request_overhead_ms {
            if self.role != Role::Cloud {
                return bad("request_overhead_ms belongs in a cloud profile".into());
            }
            if !(overhead.is_finite() && overhead >= 0.0) {
                return bad(format!("request_overhead_ms must be finite and not negative, got {overhead}"));
            }
        }
        if let Some(overhead) = self.wire_overhead_bytes {
            if self.role != Role::Cloud {
                return bad("wire_overhead_bytes belongs in a cloud profile".into());
            }
            if !(overhead.is_finite() && overhead >= 0.0) {
                return bad(format!(
                    "wire_overhead_bytes must be a finite number of bytes, not negative; got {overhead}"
                ));
            }
        }
        if let Some(power) = self.power_w
            && !(power.is_finite() && power > 0.0)
        {
            return bad(format!(
                "power_w must be a finite number of watts above 0, got {power}"
            ));
        }
        if self.candidates.is_empty() {
            return bad("no candidates".into());
        }
        let mut seen = HashSet::new();
        for entry in &self.candidates {
            let name = &entry.name;
            if name.trim().is_empty() {
                return bad("a candidate has an empty name".into());
            }
            if !seen.insert(name.as_str()) {
                return bad(format!("candidate {name:?} appears twice"));
            }
            for (field, value) in [("median_ms", entry.median_ms), ("p90_ms", entry.p90_ms)] {
                if !value.is_finite() {
                    return bad(format!(
                        "candidate {name:?}: {field} is not finite ({value})"
                    ));
                }
                if value < 0.0 {
                    return bad(format!(
                        "candidate {name:?}: {field} is negative ({value} ms)"
                    ));
                }
            }
            if entry.p90_ms < entry.median_ms {
                return bad(format!(
                    "candidate {name:?}: p90_ms {} is below median_ms {}",
                    entry.p90_ms, entry.median_ms
                ));
            }
        }
        Ok(())
    }

    /// Fails with [`Error::WrongRole`] unless the profile was measured on `expected`'s end.
    pub fn expect_role(&self, expected: Role) -> Result<()> {
        if self.role == expected {
            Ok(())
        } else {
            Err(Error::WrongRole {
                device: self.device.clone(),
                expected,
                found: self.role,
            })
        }
    }

    /// The entry for a candidate, if the profile has one.
    pub fn get(&self, name: &str) -> Option<&ProfileEntry> {
        self.candidates.iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, median_ms: f64, p90_ms: f64) -> ProfileEntry {
        ProfileEntry {
            name: name.into(),
            median_ms,
            p90_ms,
            samples: 50,
        }
    }

    fn sample() -> Profile {
        Profile {
            format: PROFILE_FORMAT,
            device: "test phone".into(),
            role: Role::Mobile,
            threads: 2,
            load_level: 0,
            power_w: Some(1.3),
            request_overhead_ms: None,
            wire_overhead_bytes: None,
            source: String::new(),
            candidates: vec![
                entry("RB1", 1.5, 1.8),
                entry("cloud-only", 0.0, 0.0),
                entry("mobile-only", 15.7, 16.0),
            ],
        }
    }

    fn invalid_reason(p: &Profile) -> String {
        match p.validate() {
            Err(Error::InvalidProfile(reason)) => reason,
            other => panic!("expected InvalidProfile, got {other:?}"),
        }
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("bottlenet-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.json");
        let profile = sample();
        profile.save(&path).unwrap();
        assert_eq!(Profile::load(&path).unwrap(), profile);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("p.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn negative_times_are_rejected_by_name() {
        let mut p = sample();
        p.candidates[0].median_ms = -0.1;
        let reason = invalid_reason(&p);
        assert!(
            reason.contains("RB1") && reason.contains("negative"),
            "{reason}"
        );
    }

    #[test]
    fn p90_below_median_duplicates_and_bad_fields_are_rejected() {
        let mut p = sample();
        p.candidates[0].p90_ms = 1.0;
        assert!(invalid_reason(&p).contains("p90_ms"));
        let mut p = sample();
        p.candidates.push(entry("RB1", 1.0, 1.0));
        assert!(invalid_reason(&p).contains("twice"));
        let mut p = sample();
        p.threads = 0;
        assert!(invalid_reason(&p).contains("threads"));
        let mut p = sample();
        p.power_w = Some(0.0);
        assert!(invalid_reason(&p).contains("power_w"));
        let mut p = sample();
        p.format = 2;
        assert!(invalid_reason(&p).contains("format"));
        let mut p = sample();
        p.candidates[2].median_ms = f64::NAN;
        assert!(invalid_reason(&p).contains("not finite"));
    }

    #[test]
    fn wire_overhead_is_cloud_only_finite_and_not_negative() {
        let mut p = sample();
        p.role = Role::Cloud;
        p.power_w = None;
        p.wire_overhead_bytes = Some(0.0);
        p.validate().unwrap();
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            p.wire_overhead_bytes = Some(bad);
            let reason = invalid_reason(&p);
            assert!(reason.contains("wire_overhead_bytes") && !reason.contains('\n'), "{reason}");
        }
        let mut phone = sample();
        phone.wire_overhead_bytes = Some(60.0);
        assert!(invalid_reason(&phone).contains("belongs in a cloud profile"));
    }

    #[test]
    fn a_profile_without_wire_overhead_parses_and_serializes_without_it() {
        let text = serde_json::to_string(&sample()).unwrap();
        assert!(!text.contains("wire_overhead_bytes"), "{text}");
        let p: Profile = serde_json::from_str(&text).unwrap();
        assert_eq!(p.wire_overhead_bytes, None);
    }

    #[test]
    fn wrong_role_is_reported() {
        let p = sample();
        assert!(p.expect_role(Role::Mobile).is_ok());
        let err = p.expect_role(Role::Cloud).unwrap_err();
        assert!(matches!(
            err,
            Error::WrongRole {
                expected: Role::Cloud,
                found: Role::Mobile,
                ..
            }
        ));
        assert!(err.to_string().contains("cloud profile is needed"), "{err}");
    }

    #[test]
    fn unknown_fields_and_roles_fail_to_parse() {
        let text = serde_json::to_string(&sample()).unwrap();
        let extra = text.replacen('{', "{\"colour\":1,", 1);
        assert!(serde_json::from_str::<Profile>(&extra).is_err());
        let role = text.replace("\"mobile\"", "\"edge\"");
        assert!(serde_json::from_str::<Profile>(&role).is_err());
    }

    #[test]
    fn load_names_the_file_on_error() {
        let missing = std::env::temp_dir().join("bottlenet-no-such-profile.json");
        let err = Profile::load(&missing).unwrap_err();
        assert!(
            err.to_string().contains("bottlenet-no-such-profile.json"),
            "{err}"
        );
    }
}
