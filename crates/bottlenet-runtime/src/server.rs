//! The cloud half as a gRPC service (paper §3.1: the cloud runs decompressor, restoration unit
//! and the remaining layers, and sends the result back), with dynamic batching, a bounded
//! queue, deadlines, health, metrics, optional TLS and bearer token, and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use bottlenet_codec::FrameSpec;

use crate::admission::check_frame;
use crate::auth::RequireToken;
use crate::batcher::{BatchConfig, Dispatcher, Route, Served};
use crate::route_load::RouteLoad;
pub use crate::config::{ServerConfig, TlsIdentity, check_exposure};
use crate::deadline::{ReceivedAt, request_deadline};
use crate::error::{Error, Result};
use crate::metrics::{self, Metrics, UNKNOWN_LABEL};
use crate::model::{CLOUD_ONLY, CloudHalf, DEFAULT_TOP_K, MOBILE_ONLY, top_k};
use crate::proto::bottle_net_server::{BottleNet, BottleNetServer};
use crate::proto::{
    ClassScore, InferImageRequest, InferReply, InferRequest, Load, ModelStatus, SplitStatus,
    StatusReply, StatusRequest, StreamRequest,
};
use crate::server_stream;

/// Bytes a request message may carry beyond its payload (ids, split name, protobuf tags):
/// tonic refuses a message larger than `max_message_bytes` plus this before any handler runs
/// (and would end a stream with it); [`Shared::run`] refuses a payload larger than
/// `max_message_bytes` with an answer for that message alone.
const ENVELOPE_BYTES: usize = 1024;

/// HTTP/2 connection and stream receive windows of the server and the client.
pub(crate) const RECEIVE_WINDOW_BYTES: u32 = 1 << 20;

/// The state every handler shares.
pub(crate) struct Shared {
    models: Vec<Arc<dyn CloudHalf>>,
    by_name: HashMap<String, usize>,
    /// Per model: what each split's frames must carry (checked before decoding).
    specs: Vec<HashMap<String, FrameSpec>>,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    config: ServerConfig,
    /// Turns true when graceful shutdown begins: open streams stop reading, answer what they
    /// read and end (a long-lived stream would otherwise hold the shutdown forever).
    pub(crate) closing: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn resolve(&self, model: &str, split: &str) -> Result<Route> {
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

    pub(crate) async fn run(
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
        // Header and CRC only (no payload decoding), here rather than on a worker: a frame that
        // cannot be what the split expects never takes a queue slot.
        if let Some(spec) = self.specs[route.model].get(split) {
            check_frame(&payload, split, spec)?;
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

    /// Counts a finished request under labels that never come from unchecked input, and logs
    /// the server's own failures (INTERNAL), which the phone hides behind its own answer.
    pub(crate) fn count(&self, model: &str, split: &str, result: std::result::Result<(), &Status>) {
        let code = result.map_or_else(Status::code, |()| tonic::Code::Ok);
        let (model, split) = match self.resolve(model, split) {
            Ok(route) => (self.models[route.model].model_name(), route.split),
            Err(_) => (UNKNOWN_LABEL, UNKNOWN_LABEL.to_string()),
        };
        self.metrics.count_request(model, &split, code);
        if let Err(status) = result
            && code == tonic::Code::Internal
        {
            tracing::error!(model, split = %split, message = status.message(), "answered INTERNAL");
        }
    }
}

struct Service {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl BottleNet for Service {
    type InferStreamStream = server_stream::ReplyStream;

    async fn infer_stream(
        &self,
        request: Request<tonic::Streaming<StreamRequest>>,
    ) -> std::result::Result<Response<Self::InferStreamStream>, Status> {
        let metadata = request.metadata().clone();
        server_stream::open(Arc::clone(&self.shared), &metadata, request.into_inner())
            .map(Response::new)
            .map_err(Status::from)
    }

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
        self.shared
            .count(&r.model, &r.split, result.as_ref().map(|_| ()));
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
        self.shared
            .count(&r.model, CLOUD_ONLY, result.as_ref().map(|_| ()));
        result.map(Response::new)
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> std::result::Result<Response<StatusReply>, Status> {
        let s = &self.shared;
        let now = std::time::Instant::now();
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
                idle_ms: l.idle(now).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
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
        let mut specs = Vec::with_capacity(models.len());
        for (i, m) in models.iter().enumerate() {
            if by_name.insert(m.model_name().to_string(), i).is_some() {
                return Err(Error::Config(format!(
                    "model `{}` given twice",
                    m.model_name()
                )));
            }
            let mut model_specs = HashMap::new();
            for split in m.splits() {
                if split == CLOUD_ONLY || split == MOBILE_ONLY {
                    return Err(Error::Config(format!(
                        "`{split}` is reserved and cannot name a split"
                    )));
                }
                let (Some(shape), Some(params)) = (m.feature_shape(&split), m.codec_params(&split))
                else {
                    return Err(Error::Config(format!(
                        "model `{}` lists split `{split}` without a shape or codec parameters",
                        m.model_name()
                    )));
                };
                model_specs.insert(split, FrameSpec { shape, params });
            }
            specs.push(model_specs);
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
            specs,
            dispatcher,
            metrics,
            config,
            closing: watch::Sender::new(false),
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
        let closing = Arc::clone(&shared);
        let signal = async move {
            shutdown.await;
            closing.closing.send_replace(true);
            reporter.set_not_serving::<BottleNetServer<Service>>().await;
            let _ = stop_tx.send(());
        };

        let service = BottleNetServer::new(Service {
            shared: Arc::clone(&shared),
        })
        .max_decoding_message_size(shared.config.max_message_bytes.saturating_add(ENVELOPE_BYTES));
        let token = RequireToken::new(shared.config.token.as_deref(), Arc::clone(&shared.metrics));
        let service = tonic::service::interceptor::InterceptedService::new(service, token);

        // HTTP/2 receive windows well above one message: a phone's frames and its up-link
        // probes (uplink_probe.rs) never wait a round trip for a WINDOW_UPDATE.
        let mut builder = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_connection_window_size(RECEIVE_WINDOW_BYTES)
            .initial_stream_window_size(RECEIVE_WINDOW_BYTES);
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
