//! The cloud half as a gRPC service (paper §3.1: the cloud runs decompressor, restoration unit
//! and the remaining layers, and sends the result back), with dynamic batching, a bounded
//! queue, deadlines, health, metrics, optional TLS and bearer token, and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Response, Status};

use crate::batcher::{BatchConfig, Dispatcher, Route, RouteLoad, Served};
use crate::error::{Error, Result};
use crate::metrics::{self, Metrics, UNKNOWN_LABEL};
use crate::model::{CLOUD_ONLY, CloudHalf, DEFAULT_TOP_K, MOBILE_ONLY, top_k};
use crate::proto::bottle_net_server::{BottleNet, BottleNetServer};
use crate::proto::{
    ClassScore, InferImageRequest, InferReply, InferRequest, Load, ModelStatus, SplitStatus,
    StatusReply, StatusRequest,
};

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
            metrics_addr: None,
        }
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<()> {
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
        if let Some(token) = &self.token
            && (token.is_empty()
                || MetadataValue::<Ascii>::try_from(format!("Bearer {token}")).is_err())
        {
            return Err(Error::Config(
                "token must be non-empty printable ASCII".into(),
            ));
        }
        Ok(())
    }
}

/// The state every handler shares.
struct Shared {
    models: Vec<Arc<dyn CloudHalf>>,
    by_name: HashMap<String, usize>,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    config: ServerConfig,
}

/// Request extension: when the request reached the service stack (before tonic's own
/// `grpc-timeout` timer started), so our deadline is never later than tonic's.
#[derive(Clone, Copy, Debug)]
struct ReceivedAt(Instant);

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

fn request_deadline<T>(request: &Request<T>) -> Option<Instant> {
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

impl Shared {
    fn resolve(&self, model: &str, split: &str) -> Result<Route> {
        let &index = self
            .by_name
            .get(model)
            .ok_or_else(|| Error::UnknownModel(model.to_string()))?;
        let served = split == CLOUD_ONLY || self.models[index].feature_shape(split).is_some();
        if !served {
            return Err(Error::UnknownSplit {
                model: model.to_string(),
                split: split.to_string(),
            });
        }
        Ok(Route {
            model: index,
            split: split.to_string(),
        })
    }

    fn load_of(&self, route: &Route) -> Load {
        let l = self.dispatcher.load(route);
        Load {
            queue_depth: u32::try_from(self.dispatcher.queue_depth()).unwrap_or(u32::MAX),
            smoothed_service_us: l.service_us.round() as u64,
            smoothed_queue_us: l.queue_us.round() as u64,
        }
    }

    async fn run(
        &self,
        model: &str,
        split: &str,
        payload: Vec<u8>,
        deadline: Option<Instant>,
        request_id: u64,
        k: u32,
    ) -> Result<InferReply> {
        let route = self.resolve(model, split)?;
        let name = self.models[route.model].model_name();
        self.metrics
            .received_bytes
            .with_label_values(&[name, split])
            .inc_by(payload.len() as u64);
        if payload.len() > self.config.max_message_bytes {
            return Err(Error::MessageTooLarge {
                got: payload.len(),
                limit: self.config.max_message_bytes,
            });
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(Error::DeadlineExceeded);
        }
        let rx = self.dispatcher.submit(route.clone(), payload, deadline)?;
        let answer = match deadline {
            // Dropping `rx` on timeout tells the batcher to skip this request.
            Some(d) => tokio::time::timeout_at(d.into(), rx)
                .await
                .map_err(|_| Error::DeadlineExceeded)?,
            None => rx.await,
        };
        let served: Served = answer.map_err(|_| Error::ShuttingDown)??;
        let model = &self.models[route.model];
        let k = if k == 0 { DEFAULT_TOP_K } else { k as usize };
        Ok(InferReply {
            request_id,
            top_k: top_k(&served.logits, k, model.class_names())
                .into_iter()
                .map(|c| ClassScore {
                    index: u32::try_from(c.index).unwrap_or(u32::MAX),
                    label: c.label,
                    score: c.score,
                })
                .collect(),
            queue_us: u64::try_from(served.queue.as_micros()).unwrap_or(u64::MAX),
            service_us: u64::try_from(served.service.as_micros()).unwrap_or(u64::MAX),
            batch_size: u32::try_from(served.batch_size).unwrap_or(u32::MAX),
            load: Some(self.load_of(&route)),
        })
    }

    /// Counts a finished request under labels that never come from unchecked input.
    fn count(&self, model: &str, split: &str, code: tonic::Code) {
        match self.resolve(model, split) {
            Ok(route) => self.metrics.count_request(
                self.models[route.model].model_name(),
                &route.split,
                code,
            ),
            Err(_) => self
                .metrics
                .count_request(UNKNOWN_LABEL, UNKNOWN_LABEL, code),
        }
    }
}

struct Service {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl BottleNet for Service {
    async fn infer(
        &self,
        request: Request<InferRequest>,
    ) -> std::result::Result<Response<InferReply>, Status> {
        let deadline = request_deadline(&request);
        let r = request.into_inner();
        let result = self
            .shared
            .run(&r.model, &r.split, r.frame, deadline, r.request_id, r.top_k)
            .await
            .map_err(Status::from);
        self.shared.count(
            &r.model,
            &r.split,
            result
                .as_ref()
                .map_or_else(Status::code, |_| tonic::Code::Ok),
        );
        result.map(Response::new)
    }

    async fn infer_image(
        &self,
        request: Request<InferImageRequest>,
    ) -> std::result::Result<Response<InferReply>, Status> {
        let deadline = request_deadline(&request);
        let r = request.into_inner();
        let result = self
            .shared
            .run(
                &r.model,
                CLOUD_ONLY,
                r.jpeg,
                deadline,
                r.request_id,
                r.top_k,
            )
            .await
            .map_err(Status::from);
        self.shared.count(
            &r.model,
            CLOUD_ONLY,
            result
                .as_ref()
                .map_or_else(Status::code, |_| tonic::Code::Ok),
        );
        result.map(Response::new)
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> std::result::Result<Response<StatusReply>, Status> {
        let s = &self.shared;
        let split_status = |index: usize, split: String| {
            let l: RouteLoad = s.dispatcher.load(&Route {
                model: index,
                split: split.clone(),
            });
            SplitStatus {
                split,
                smoothed_service_us: l.service_us.round() as u64,
                smoothed_queue_us: l.queue_us.round() as u64,
                served: l.served,
            }
        };
        let models = s
            .models
            .iter()
            .enumerate()
            .map(|(index, m)| {
                let mut splits: Vec<SplitStatus> = m
                    .splits()
                    .into_iter()
                    .map(|sp| split_status(index, sp))
                    .collect();
                splits.push(split_status(index, CLOUD_ONLY.to_string()));
                ModelStatus {
                    model: m.model_name().to_string(),
                    classes: m.class_names().to_vec(),
                    splits,
                }
            })
            .collect();
        Ok(Response::new(StatusReply {
            models,
            queue_depth: u32::try_from(s.dispatcher.queue_depth()).unwrap_or(u32::MAX),
            max_queue: u32::try_from(s.config.max_queue).unwrap_or(u32::MAX),
            max_batch: u32::try_from(s.config.max_batch).unwrap_or(u32::MAX),
            max_message_bytes: s.config.max_message_bytes as u64,
        }))
    }
}

/// Checks `authorization: Bearer <token>` when a token is configured.
#[derive(Clone)]
struct RequireToken {
    expected: Option<Arc<[u8]>>,
    metrics: Arc<Metrics>,
}

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected) {
            Ok(request)
        } else {
            self.metrics
                .count_request(UNKNOWN_LABEL, UNKNOWN_LABEL, tonic::Code::Unauthenticated);
            Err(Status::unauthenticated("missing or wrong bearer token"))
        }
    }
}

/// Compares without an early exit, so response time does not leak how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// tonic reports an oversize request as OUT_OF_RANGE; the gRPC status-code spec says
/// RESOURCE_EXHAUSTED ("request message larger than configured max"), so the answer is
/// rewritten here, where the request never reached a handler.
fn oversize_to_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
    metrics: &Metrics,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let too_large = headers.get("grpc-message").is_some_and(|v| {
        let m = String::from_utf8_lossy(v.as_bytes()).replace("%20", " ");
        m.contains("decoded message length too large")
    });
    if out_of_range && too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        metrics.count_request(UNKNOWN_LABEL, UNKNOWN_LABEL, tonic::Code::ResourceExhausted);
    }
    response
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM: the future to hand to [`Server::serve`].
/// A signal that cannot be installed is never reported (it must not stop the server).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A bound, not yet serving, server. Binding first lets callers learn the port (port 0 in tests).
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Server {
    /// Validates the configuration and models, starts the worker threads and binds the ports.
    pub async fn bind(config: ServerConfig, models: Vec<Arc<dyn CloudHalf>>) -> Result<Server> {
        config.validate()?;
        if models.is_empty() {
            return Err(Error::Config("a server needs at least one model".into()));
        }
        let mut by_name = HashMap::new();
        for (i, m) in models.iter().enumerate() {
            if by_name.insert(m.model_name().to_string(), i).is_some() {
                return Err(Error::Config(format!(
                    "model `{}` given twice",
                    m.model_name()
                )));
            }
            for split in m.splits() {
                if split == CLOUD_ONLY || split == MOBILE_ONLY {
                    return Err(Error::Config(format!(
                        "`{split}` is reserved and cannot name a split"
                    )));
                }
                if m.feature_shape(&split).is_none() {
                    return Err(Error::Config(format!(
                        "model `{}` lists split `{split}` without a shape",
                        m.model_name()
                    )));
                }
            }
        }
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            config.workers
        };
        let metrics = Arc::new(Metrics::new()?);
        let batch = BatchConfig {
            max_batch: config.max_batch,
            max_delay: Duration::from_millis(config.max_delay_ms),
            max_queue: config.max_queue,
            workers,
        };
        let listener = TcpListener::bind(config.addr).await?;
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let dispatcher = Dispatcher::start(models.clone(), batch, Arc::clone(&metrics))?;
        let shared = Arc::new(Shared {
            models,
            by_name,
            dispatcher,
            metrics,
            config,
        });
        Ok(Server {
            listener,
            metrics_listener,
            shared,
        })
    }

    /// The gRPC address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The metrics address actually bound, when metrics are on.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        Ok(self
            .metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?)
    }

    /// Serves until `shutdown` resolves; then reports NOT_SERVING, stops accepting, finishes
    /// every request in flight or queued, stops the workers and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server {
            listener,
            metrics_listener,
            shared,
        } = self;
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_serving::<BottleNetServer<Service>>().await;

        // `stopped` fires once shutdown began, or once the gRPC server ends for any reason
        // (the sender is dropped with the signal future).
        let (stop_tx, mut stopped) = watch::channel(());
        let metrics_task = metrics_listener.map(|l| {
            let mut stopped = stopped.clone();
            tokio::spawn(metrics::serve(l, Arc::clone(&shared.metrics), async move {
                let _ = stopped.changed().await;
            }))
        });
        let signal = async move {
            shutdown.await;
            reporter.set_not_serving::<BottleNetServer<Service>>().await;
            let _ = stop_tx.send(());
        };

        let service = BottleNetServer::new(Service {
            shared: Arc::clone(&shared),
        })
        .max_decoding_message_size(shared.config.max_message_bytes);
        let token = RequireToken {
            expected: shared
                .config
                .token
                .as_ref()
                .map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
            metrics: Arc::clone(&shared.metrics),
        };
        let service = tonic::service::interceptor::InterceptedService::new(service, token);

        let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
        if let Some(tls) = &shared.config.tls {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            builder =
                builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
        }
        let stamp_metrics = Arc::clone(&shared.metrics);
        let layers = tower::ServiceBuilder::new()
            .map_request(|mut req: http::Request<tonic::body::Body>| {
                req.extensions_mut().insert(ReceivedAt(Instant::now()));
                req
            })
            .map_response(move |res| oversize_to_resource_exhausted(res, &stamp_metrics));
        let served = builder
            .layer(layers)
            .add_service(health)
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
            .await;

        // Every connection is closed: finish the queue and stop the workers off the reactor.
        shared.dispatcher.close();
        let joiner = Arc::clone(&shared);
        let joined = tokio::task::spawn_blocking(move || joiner.dispatcher.join()).await;
        let _ = stopped.changed().await;
        let metrics_result = match metrics_task {
            Some(task) => task
                .await
                .map_err(|e| Error::Model(format!("metrics task failed: {e}")))?,
            None => Ok(()),
        };
        served?;
        joined.map_err(|e| Error::Model(format!("worker join failed: {e}")))?;
        metrics_result
    }
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

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"Bearer a", b"Bearer a"));
        assert!(!constant_time_eq(b"Bearer a", b"Bearer b"));
        assert!(!constant_time_eq(b"Bearer", b"Bearer a"));
    }
}
