//! The bearer token: the server's check of `authorization: Bearer <token>` on every BottleNet
//! call (the health service stays open for load balancers), and the client's stamp of it.

use std::sync::Arc;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status};

use crate::error::{Error, Result};
use crate::metrics::{Metrics, UNKNOWN_LABEL};

/// The `authorization` header value of `token`; a token that cannot travel in a header (empty,
/// not printable ASCII) is a configuration error.
pub(crate) fn header_value(token: &str) -> Result<MetadataValue<Ascii>> {
    if token.is_empty() {
        return Err(Error::Config("the bearer token is empty".into()));
    }
    // HTTP would also carry spaces and bytes ≥ 0x80 ("obs-text"); a token is one printable word.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(
            "the bearer token must be printable ASCII without spaces".into(),
        ));
    }
    MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| Error::Config("the bearer token must be printable ASCII".into()))
}

/// Server side: refuses a call without the expected token as UNAUTHENTICATED.
#[derive(Clone)]
pub(crate) struct RequireToken {
    expected: Option<Arc<[u8]>>,
    metrics: Arc<Metrics>,
}

impl RequireToken {
    pub fn new(token: Option<&str>, metrics: Arc<Metrics>) -> Self {
        RequireToken {
            expected: token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
            metrics,
        }
    }
}

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request.metadata().get("authorization");
        if constant_time_eq(given.map(|v| v.as_bytes()).unwrap_or_default(), expected) {
            return Ok(request);
        }
        let why = if given.is_some() { "wrong" } else { "missing" };
        tracing::info!(remote = ?request.remote_addr(), "refused a call with a {why} bearer token");
        self.metrics
            .count_request(UNKNOWN_LABEL, UNKNOWN_LABEL, tonic::Code::Unauthenticated);
        Err(Status::unauthenticated(format!("{why} bearer token")))
    }
}

/// Compares without an early exit, so response time does not leak how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Client side: adds `authorization: Bearer <token>` when a token is set.
#[derive(Clone, Debug)]
pub(crate) struct BearerToken(pub Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"Bearer a", b"Bearer a"));
        assert!(!constant_time_eq(b"Bearer a", b"Bearer b"));
        assert!(!constant_time_eq(b"Bearer", b"Bearer a"));
    }

    #[test]
    fn missing_and_wrong_tokens_are_unauthenticated() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let mut check = RequireToken::new(Some("s3cret"), metrics);
        let with = |token: Option<&str>| {
            let mut r = Request::new(());
            if let Some(t) = token {
                r.metadata_mut()
                    .insert("authorization", header_value(t).expect("ascii"));
            }
            r
        };
        assert!(check.call(with(Some("s3cret"))).is_ok());
        for (token, why) in [(Some("guess"), "wrong"), (None, "missing")] {
            let status = check.call(with(token)).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(status.message().contains(why), "{status:?}");
        }
        assert!(header_value("").is_err());
        assert!(header_value("two\nlines").is_err());
        assert!(header_value("caf\u{e9}").is_err());
        assert!(header_value("two words").is_err());
    }
}
