//! The wireless up-link: throughput and the phone's transmit-power model (paper §3.1, Table 3).
//!
//! Units, used throughout the crate:
//! * throughput `t_u` in Mbit/s (10⁶ bit/s), payloads in bytes;
//! * times in milliseconds;
//! * up-link power `P_u = α_u·t_u + β` in milliwatts (α_u in mW per Mbit/s, β in mW), the
//!   regression of Huang et al. that the paper uses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One wireless up-link: its throughput and the power the phone draws while sending on it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Up-link throughput `t_u`, Mbit/s. Always finite and > 0.
    pub uplink_mbps: f64,
    /// Slope `α_u` of the power model, mW per Mbit/s. Finite.
    pub alpha_mw_per_mbps: f64,
    /// Intercept `β` of the power model, mW. Finite.
    pub beta_mw: f64,
}

impl Network {
    /// A network from its three parameters; rejects a non-positive or non-finite throughput,
    /// non-finite coefficients and a model that gives negative power at this throughput.
    pub fn new(uplink_mbps: f64, alpha_mw_per_mbps: f64, beta_mw: f64) -> Result<Self> {
        let network = Self {
            uplink_mbps,
            alpha_mw_per_mbps,
            beta_mw,
        };
        network.validate()?;
        Ok(network)
    }

    /// The paper's parameters for a preset (Table 3).
    pub fn preset(preset: NetworkPreset) -> Self {
        let (uplink_mbps, alpha_mw_per_mbps, beta_mw) = match preset {
            NetworkPreset::ThreeG => (1.1, 868.98, 817.88),
            NetworkPreset::FourG => (5.85, 438.39, 1288.04),
            NetworkPreset::WiFi => (18.88, 283.17, 132.86),
        };
        Self {
            uplink_mbps,
            alpha_mw_per_mbps,
            beta_mw,
        }
    }

    /// The same power model at another measured throughput (run-time re-selection, §3.4):
    /// `P_u` follows the throughput through `α_u·t_u + β`.
    pub fn with_uplink_mbps(&self, uplink_mbps: f64) -> Result<Self> {
        Self::new(uplink_mbps, self.alpha_mw_per_mbps, self.beta_mw)
    }

    /// Checks the invariants listed on the fields.
    pub fn validate(&self) -> Result<()> {
        if !(self.uplink_mbps.is_finite() && self.uplink_mbps > 0.0) {
            return Err(Error::InvalidNetwork(format!(
                "up-link throughput must be a finite number of Mbit/s above 0, got {}",
                self.uplink_mbps
            )));
        }
        if !(self.alpha_mw_per_mbps.is_finite() && self.beta_mw.is_finite()) {
            return Err(Error::InvalidNetwork(format!(
                "power coefficients must be finite, got alpha {} mW/Mbps, beta {} mW",
                self.alpha_mw_per_mbps, self.beta_mw
            )));
        }
        let power = self.uplink_power_mw();
        if power < 0.0 {
            return Err(Error::InvalidNetwork(format!(
                "power model gives {power} mW at {} Mbit/s; up-link power cannot be negative",
                self.uplink_mbps
            )));
        }
        Ok(())
    }

    /// Time to send `bytes` on the up-link, ms: `TU = 8·D / NB` (Algorithm 1 line 37, with D in
    /// bytes and NB in bit/s), i.e. `8·bytes / (t_u·10⁶) · 10³`.
    pub fn upload_ms(&self, bytes: f64) -> f64 {
        8.0 * bytes / (self.uplink_mbps * 1e6) * 1e3
    }

    /// Up-link power while sending, mW: `P_u = α_u·t_u + β` (paper §3.1).
    pub fn uplink_power_mw(&self) -> f64 {
        self.alpha_mw_per_mbps * self.uplink_mbps + self.beta_mw
    }

    /// Phone energy spent sending `bytes`, mJ: `TU·P_u` with ms·mW = µJ, hence the `/1000`.
    pub fn upload_energy_mj(&self, bytes: f64) -> f64 {
        self.upload_ms(bytes) * self.uplink_power_mw() / 1e3
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Mbit/s up, P_u = {}·t_u + {} mW",
            self.uplink_mbps, self.alpha_mw_per_mbps, self.beta_mw
        )
    }
}

/// The three wireless settings of the paper (Table 3: average U.S. up-link speeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetworkPreset {
    #[serde(rename = "3g")]
    ThreeG,
    #[serde(rename = "4g")]
    FourG,
    #[serde(rename = "wifi")]
    WiFi,
}

impl NetworkPreset {
    /// All presets, in the paper's column order.
    pub const ALL: [Self; 3] = [Self::ThreeG, Self::FourG, Self::WiFi];

    /// The preset's name as `FromStr` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ThreeG => "3g",
            Self::FourG => "4g",
            Self::WiFi => "wifi",
        }
    }

    /// The preset's parameters (Table 3).
    pub fn network(self) -> Network {
        Network::preset(self)
    }
}

impl fmt::Display for NetworkPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NetworkPreset {
    type Err = Error;

    /// Reads `3g`, `4g`, `wifi` (case-insensitive; `wi-fi` also accepted).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "3g" => Ok(Self::ThreeG),
            "4g" => Ok(Self::FourG),
            "wifi" | "wi-fi" => Ok(Self::WiFi),
            _ => Err(Error::UnknownPreset(s.to_owned())),
        }
    }
}

impl From<NetworkPreset> for Network {
    fn from(preset: NetworkPreset) -> Self {
        Self::preset(preset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_only_payload_over_3g_takes_about_194_7_ms() {
        // Paper Table 5: 26,766 B of JPEG over 3G; 196.2 ms end to end.
        let tu = Network::preset(NetworkPreset::ThreeG).upload_ms(26_766.0);
        assert!((tu - 194.6618).abs() < 1e-3, "{tu}");
    }

    #[test]
    fn power_model_matches_table_3() {
        let p = |n: NetworkPreset| n.network().uplink_power_mw();
        assert!((p(NetworkPreset::ThreeG) - (868.98 * 1.1 + 817.88)).abs() < 1e-9);
        assert!((p(NetworkPreset::FourG) - (438.39 * 5.85 + 1288.04)).abs() < 1e-9);
        assert!((p(NetworkPreset::WiFi) - (283.17 * 18.88 + 132.86)).abs() < 1e-9);
    }

    #[test]
    fn upload_energy_is_time_times_power_in_millijoules() {
        let n = Network::preset(NetworkPreset::FourG);
        let bytes = 1000.0;
        let expected = n.upload_ms(bytes) * 1e-3 * n.uplink_power_mw() * 1e-3 * 1e3; // s·W → mJ
        assert!((n.upload_energy_mj(bytes) - expected).abs() < 1e-12);
        assert!(n.upload_ms(0.0).abs() < f64::EPSILON);
    }

    #[test]
    fn presets_parse_and_print() {
        for preset in NetworkPreset::ALL {
            assert_eq!(
                preset.to_string().parse::<NetworkPreset>().ok(),
                Some(preset)
            );
        }
        assert_eq!(
            "Wi-Fi".parse::<NetworkPreset>().ok(),
            Some(NetworkPreset::WiFi)
        );
        assert!(matches!(
            "5g".parse::<NetworkPreset>(),
            Err(Error::UnknownPreset(_))
        ));
    }

    #[test]
    fn invalid_networks_are_rejected() {
        assert!(Network::new(0.0, 1.0, 1.0).is_err());
        assert!(Network::new(-1.0, 1.0, 1.0).is_err());
        assert!(Network::new(f64::NAN, 1.0, 1.0).is_err());
        assert!(Network::new(1.0, f64::INFINITY, 1.0).is_err());
        assert!(Network::new(1.0, 0.0, -5.0).is_err());
        assert!(Network::new(1.0, 0.0, 0.0).is_ok());
        assert!(
            Network::preset(NetworkPreset::ThreeG)
                .with_uplink_mbps(0.5)
                .is_ok()
        );
    }
}
