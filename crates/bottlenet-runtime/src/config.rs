//! How a server is configured: limits, batching, TLS identity, token, and the rule that keeps
//! plain text off the network.

use std::net::SocketAddr;
use std::path::Path;

use crate::auth;
use crate::error::{Error, Result};

/// A PEM certificate chain and private key for TLS.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self> {
        Ok(TlsIdentity {
            cert_pem: std::fs::read(cert)?,
            key_pem: std::fs::read(key)?,
        })
    }
}

/// How the server listens and batches.
#[derive(Clone)]
pub struct ServerConfig {
    /// Listening address; loopback by default.
    pub addr: SocketAddr,
    /// Most requests of one split run as one batch (1 = no batching).
    pub max_batch: usize,
    /// Longest a request waits for batch mates before its batch starts anyway.
    pub max_delay_ms: u64,
    /// Most requests waiting at once; beyond it requests get RESOURCE_EXHAUSTED.
    pub max_queue: usize,
    /// Largest request message accepted; beyond it RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
    /// Worker threads running the model (0 = one per available core).
    pub workers: usize,
    /// When set, every BottleNet call must carry `authorization: Bearer <token>`
    /// (the health service stays open for load balancers).
    pub token: Option<String>,
    pub tls: Option<TlsIdentity>,
    /// Accept plain-text gRPC on an address that is not loopback (see [`check_exposure`]).
    pub insecure: bool,
    /// When set, Prometheus metrics are served at `http://<metrics_addr>/metrics`.
    pub metrics_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("max_batch", &self.max_batch)
            .field("max_delay_ms", &self.max_delay_ms)
            .field("max_queue", &self.max_queue)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("workers", &self.workers)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("tls", &self.tls)
            .field("insecure", &self.insecure)
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            max_batch: 16,
            max_delay_ms: 2,
            max_queue: 1024,
            max_message_bytes: 4 << 20,
            workers: 0,
            token: None,
            tls: None,
            insecure: false,
            metrics_addr: None,
        }
    }
}

impl ServerConfig {
    /// Checks the configuration without binding anything: limits, the token, and the
    /// address rule ([`check_exposure`]).
    pub fn validate(&self) -> Result<()> {
        if self.max_batch == 0 || self.max_queue == 0 {
            return Err(Error::Config(
                "max_batch and max_queue must be at least 1".into(),
            ));
        }
        if self.max_message_bytes < 64 {
            return Err(Error::Config(
                "max_message_bytes must be at least 64".into(),
            ));
        }
        if let Some(token) = &self.token {
            auth::header_value(token)?;
        }
        check_exposure(self.addr, self.tls.is_some(), self.insecure)
    }
}

/// The address rule: frames, answers and the bearer token travel in clear without TLS, so
/// plain text is served on a loopback address only, unless `insecure` says the operator
/// accepts it (a private network, a TLS-terminating proxy in front).
pub fn check_exposure(addr: SocketAddr, tls: bool, insecure: bool) -> Result<()> {
    if tls || insecure || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{addr} is not a loopback address and TLS is off: give a certificate and key (serve --tls-cert/--tls-key), or accept plain text with --insecure"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn plain_text_only_on_loopback_unless_insecure() {
        for local in ["127.0.0.1:50051", "127.8.0.1:1", "[::1]:50051"] {
            assert!(check_exposure(addr(local), false, false).is_ok(), "{local}");
        }
        for remote in ["0.0.0.0:50051", "192.168.1.7:50051", "[::]:50051"] {
            let err = check_exposure(addr(remote), false, false).expect_err(remote);
            let line = err.to_string();
            assert!(line.contains("--tls-cert") && line.contains("--insecure"), "{line}");
            assert!(!line.contains('\n'), "{line}");
            assert!(check_exposure(addr(remote), true, false).is_ok(), "{remote} with TLS");
            assert!(check_exposure(addr(remote), false, true).is_ok(), "{remote} insecure");
        }
    }

    #[test]
    fn validate_applies_the_address_rule_and_checks_the_token() {
        let remote = ServerConfig {
            addr: addr("0.0.0.0:0"),
            ..ServerConfig::default()
        };
        assert!(remote.validate().is_err());
        assert!(ServerConfig { insecure: true, ..remote.clone() }.validate().is_ok());
        let bad_token = ServerConfig {
            token: Some(String::new()),
            ..ServerConfig::default()
        };
        assert!(bad_token.validate().is_err());
        assert!(ServerConfig::default().validate().is_ok());
    }
}
