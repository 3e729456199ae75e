//! Prometheus metrics of one server, on its own registry (so several servers can live in one
//! process, as in the tests), served as text over plain HTTP at `/metrics`.

use std::future::Future;
use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tonic::Code;

use crate::error::Result;

/// Label value used for a model or split the server does not serve: request strings are
/// untrusted, so they never become label values (unbounded cardinality).
pub(crate) const UNKNOWN_LABEL: &str = "unknown";

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Finished requests by model, split and gRPC status.
    pub requests: IntCounterVec,
    /// Requests the server failed on its own (INTERNAL: the model failed or panicked, returned
    /// the wrong number of outputs…), by model and split. The phone answers these alone, so
    /// without this counter they would look like a healthy server.
    pub internal_errors: IntCounterVec,
    /// Request payload bytes (frame or JPEG) received, by model and split.
    pub received_bytes: IntCounterVec,
    /// Time a request waited in the queue before its batch started.
    pub queue_seconds: HistogramVec,
    /// Time to decode a batch (frame: JPEG⁻¹ + untile + dequantize; cloud-only: image decode).
    pub decode_seconds: HistogramVec,
    /// Time of restoration + tail (or the full network for cloud-only) on a batch.
    pub tail_seconds: HistogramVec,
    pub batch_size: HistogramVec,
    /// Requests dropped before being computed, by reason (`deadline`, `cancelled`).
    pub dropped: IntCounterVec,
    pub queue_depth: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let split = &["model", "split"];
        // 50 µs … ~1.6 s: covers a tail on a server GPU up to a loaded CPU server.
        let latency = prometheus::exponential_buckets(50e-6, 2.0, 16)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "bottlenet_requests_total",
                "Finished requests by model, split and gRPC status.",
            ),
            &["model", "split", "status"],
        )?;
        let internal_errors = IntCounterVec::new(
            Opts::new(
                "bottlenet_internal_errors_total",
                "Requests answered INTERNAL (a server-side failure), by model and split.",
            ),
            split,
        )?;
        let received_bytes = IntCounterVec::new(
            Opts::new(
                "bottlenet_received_bytes_total",
                "Payload bytes received (frames or JPEGs).",
            ),
            split,
        )?;
        let queue_seconds = HistogramVec::new(
            HistogramOpts::new(
                "bottlenet_queue_seconds",
                "Time a request waited in the queue.",
            )
            .buckets(latency.clone()),
            split,
        )?;
        let decode_seconds = HistogramVec::new(
            HistogramOpts::new("bottlenet_decode_seconds", "Decode time of one batch.")
                .buckets(latency.clone()),
            split,
        )?;
        let tail_seconds = HistogramVec::new(
            HistogramOpts::new(
                "bottlenet_tail_seconds",
                "Restoration + tail time of one batch.",
            )
            .buckets(latency),
            split,
        )?;
        let batch_size = HistogramVec::new(
            HistogramOpts::new("bottlenet_batch_size", "Requests per executed batch.")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 10)?),
            split,
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "bottlenet_dropped_total",
                "Requests dropped unserved, by reason.",
            ),
            &["reason"],
        )?;
        let queue_depth = IntGauge::new("bottlenet_queue_depth", "Requests waiting in the queue.")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(internal_errors.clone()))?;
        registry.register(Box::new(received_bytes.clone()))?;
        registry.register(Box::new(queue_seconds.clone()))?;
        registry.register(Box::new(decode_seconds.clone()))?;
        registry.register(Box::new(tail_seconds.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            internal_errors,
            received_bytes,
            queue_seconds,
            decode_seconds,
            tail_seconds,
            batch_size,
            dropped,
            queue_depth,
        })
    }

    pub fn count_request(&self, model: &str, split: &str, code: Code) {
        self.requests
            .with_label_values(&[model, split, code_name(code)])
            .inc();
        if code == Code::Internal {
            self.internal_errors.with_label_values(&[model, split]).inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The canonical upper-case gRPC name of a status code.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                match metrics.render() {
                    Ok(text) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    ),
                    Err(err) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                        err.to_string(),
                    ),
                }
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_the_counters() {
        let m = Metrics::new().expect("metrics register");
        m.count_request("toy", "rb1", Code::Ok);
        m.received_bytes
            .with_label_values(&["toy", "rb1"])
            .inc_by(140);
        m.count_request("toy", "rb1", Code::Internal);
        m.count_request("toy", "rb1", Code::Internal);
        m.count_request("toy", "rb1", Code::InvalidArgument);
        let text = m.render().expect("render");
        assert!(
            text.contains(r#"bottlenet_internal_errors_total{model="toy",split="rb1"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bottlenet_requests_total{model="toy",split="rb1",status="OK"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bottlenet_received_bytes_total{model="toy",split="rb1"} 140"#),
            "{text}"
        );
    }
}
