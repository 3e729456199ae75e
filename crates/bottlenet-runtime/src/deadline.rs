//! Request deadlines: the client's `grpc-timeout`, measured from when the request reached the
//! service stack.

use std::time::{Duration, Instant};

use tonic::Request;

/// Request extension: when the request reached the service stack (before tonic's own
/// `grpc-timeout` timer started), so our deadline is never later than tonic's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReceivedAt(pub Instant);

/// Our handler gives up this much before the client's deadline so that it, not tonic's
/// transport timer (which would say CANCELLED), answers DEADLINE_EXCEEDED.
const DEADLINE_MARGIN: Duration = Duration::from_millis(2);

/// Parses a `grpc-timeout` header value (gRPC over HTTP/2: up to 8 digits and a unit).
pub(crate) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pub(crate) fn request_deadline<T>(request: &Request<T>) -> Option<Instant> {
    let timeout = request
        .metadata()
        .get("grpc-timeout")?
        .to_str()
        .ok()
        .and_then(parse_grpc_timeout)?;
    let received = request
        .extensions()
        .get::<ReceivedAt>()
        .map_or_else(Instant::now, |r| r.0);
    Some(received + timeout.saturating_sub(DEADLINE_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_parses() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("-1m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }
}
