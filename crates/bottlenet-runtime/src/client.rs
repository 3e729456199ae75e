//! The phone half as a gRPC client (paper §3.1, §3.4): runs the head, sends the frame, gets the
//! top-k back; chooses the split per request (fixed, or through a [`SplitPolicy`](crate::SplitPolicy)); answers from
//! the phone alone while the server is unreachable or overloaded, and returns to splitting once
//! a periodic probe finds it healthy again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

pub use crate::answer::Answer;
use crate::auth::{self, BearerToken};
pub use crate::client_options::{ClientOptions, ClientTls, SplitMode, Transport};
use crate::error::{Error, Result};
use crate::link::{Link, Rpc, SharedPolicy, lock, probe, refuses_credentials, served_splits};
use crate::metrics::code_name;
use crate::model::{ClassScore, Image, PhoneHalf, top_k};
use crate::pacer::UplinkPacer;
use crate::policy::{Choice, Observation, SplitLoad};
use crate::proto::bottle_net_client::BottleNetClient;
use crate::proto::{InferImageRequest, InferReply, InferRequest, StatusReply, StatusRequest};
use crate::stream_client::{Sent, StreamLink, StreamSettings};
use crate::uplink::UplinkEstimator;
use crate::uplink_probe::{self, ProbeStats, UplinkProber};

/// Runs the phone's compute for one image. On a multi-threaded runtime it runs right here
/// (`block_in_place`: tokio moves this worker's other tasks elsewhere), so the image's phone
/// time is the compute alone; a hand-off to the blocking pool costs two thread wake-ups per
/// image on the critical path, about as long as the compact head itself (measured over the
/// netem veth: the RB1 phone time 0.41–0.57 ms with the hand-off, 0.29–0.44 ms in place;
/// docs/netem.md). A current-thread runtime cannot block in place, so there it goes to the
/// blocking pool.
async fn on_this_thread<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Model(format!("phone model task failed: {e}")))?,
    }
}

enum Mode {
    Fixed(Choice),
    Auto(SharedPolicy),
}

/// Status codes after which the phone answers alone: the server is down, overloaded, too slow,
/// or the connection broke. Other codes (bad frame, unknown split, bad token…) are
/// configuration errors that a retry would not fix, so they are returned.
fn server_unusable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::Internal
    )
}

/// Of the codes after which the phone answers alone, those by which the server itself failed
/// (rather than being unreachable, busy or slow): counted apart in the run's summary.
pub fn server_fault(code: Code) -> bool {
    matches!(code, Code::Internal | Code::Unknown)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A connection to one server for one model; cheap to share (`&self` everywhere).
pub struct Client {
    rpc: Rpc,
    phone: Arc<dyn PhoneHalf>,
    model: String,
    mode: Mode,
    top_k: u32,
    timeout: Duration,
    probe_every: u32,
    probe_interval: Duration,
    jpeg_quality: u8,
    pacer: Option<Arc<UplinkPacer>>,
    /// `None` with [`Transport::Unary`].
    stream: Option<StreamLink>,
    wire_overhead_bytes: f64,
    uplink: Arc<Mutex<UplinkEstimator>>,
    prober: Arc<UplinkProber>,
    link: Arc<Mutex<Link>>,
    server_splits: Mutex<Option<Vec<String>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("model", &self.model)
            .field("link", &*lock(&self.link))
            .finish_non_exhaustive()
    }
}

/// Failure of the server path of one request.
enum RemoteFailure {
    /// The server could not serve it: answer from the phone.
    Fallback {
        tm_ms: f64,
        status: Status,
    },
    Fatal(Error),
}

impl From<Error> for RemoteFailure {
    fn from(e: Error) -> Self {
        RemoteFailure::Fatal(e)
    }
}

impl Client {
    /// Opens a (lazy) channel to `url` and probes the server once. An unreachable server is not
    /// an error: the client starts mobile-only and keeps probing. A reachable server that does
    /// not serve the phone's model, or a fixed split it lacks, is.
    pub async fn connect(
        url: &str,
        phone: Arc<dyn PhoneHalf>,
        options: ClientOptions,
    ) -> Result<Client> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::Config(format!("bad server URL `{url}`: {e}")))?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .initial_connection_window_size(crate::server::RECEIVE_WINDOW_BYTES)
            .initial_stream_window_size(crate::server::RECEIVE_WINDOW_BYTES);
        if options.tls.is_some() || url.starts_with("https://") {
            let tls = options.tls.clone().unwrap_or_default();
            let mut cfg = ClientTlsConfig::new();
            cfg = match &tls.ca_pem {
                Some(ca) => cfg.ca_certificate(Certificate::from_pem(ca)),
                None => cfg.with_native_roots(),
            };
            if let Some(domain) = &tls.domain {
                cfg = cfg.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(cfg)?;
        }
        let token = options.token.as_deref().map(auth::header_value).transpose()?;
        let rpc = BottleNetClient::with_interceptor(endpoint.connect_lazy(), BearerToken(token));

        let model = phone.model_name().to_string();
        let phone_splits = phone.splits();
        let mode = match options.mode {
            SplitMode::Fixed(split) => {
                if !phone_splits.contains(&split) {
                    return Err(Error::UnknownSplit { model, split });
                }
                Mode::Fixed(Choice::Split(split))
            }
            SplitMode::CloudOnly => Mode::Fixed(Choice::CloudOnly),
            SplitMode::MobileOnly => Mode::Fixed(Choice::MobileOnly),
            SplitMode::Auto(policy) => Mode::Auto(Arc::new(Mutex::new(policy))),
        };
        if options.top_k == 0 {
            return Err(Error::Config("top_k must be at least 1".into()));
        }
        let stream = (options.transport == Transport::Stream).then(|| {
            StreamLink::new(StreamSettings {
                model: model.clone(),
                top_k: options.top_k,
                timeout: options.timeout,
            })
        });
        let client = Client {
            rpc,
            phone,
            stream,
            wire_overhead_bytes: options.wire_overhead_bytes.max(0.0),
            uplink: Arc::new(Mutex::new(UplinkEstimator::new(options.declared_uplink_mbps))),
            prober: Arc::new(UplinkProber::new(options.uplink_probe_interval)),
            model,
            mode,
            top_k: options.top_k,
            timeout: options.timeout,
            probe_every: options.probe_every.max(1),
            probe_interval: options.probe_interval,
            jpeg_quality: options.jpeg_quality,
            pacer: options.pacer,
            link: Arc::new(Mutex::new(Link::new())),
            server_splits: Mutex::new(None),
            next_id: AtomicU64::new(1),
        };
        if matches!(client.mode, Mode::Fixed(Choice::MobileOnly)) {
            return Ok(client);
        }
        match client.probe_once().await {
            Ok(status) => client.learn_splits(&status)?,
            Err(Error::Rpc(status)) if refuses_credentials(status.code()) => {
                return Err(Error::Unauthenticated(status.message().to_string()));
            }
            Err(e) => {
                lock(&client.link).last_failure = Some(match &e {
                    Error::Rpc(status) => status.code(),
                    _ => Code::Unavailable,
                });
                tracing::warn!(
                    url,
                    error = %e,
                    "server not reachable; the phone answers alone (counted as fallbacks) until a probe reaches it"
                );
            }
        }
        Ok(client)
    }

    /// Records the splits a reachable server holds; a server without the phone's model, or
    /// without its fixed split, is a configuration error.
    fn learn_splits(&self, status: &StatusReply) -> Result<()> {
        let splits = served_splits(status, &self.model)
            .ok_or_else(|| Error::UnknownModel(self.model.clone()))?;
        if let Mode::Fixed(Choice::Split(split)) = &self.mode
            && !splits.contains(split)
        {
            return Err(Error::UnknownSplit {
                model: self.model.clone(),
                split: split.clone(),
            });
        }
        *lock(&self.server_splits) = Some(splits);
        if status.max_message_bytes > 0 {
            self.prober.limit_padding(status.max_message_bytes);
        }
        if let Some(policy) = self.policy() {
            lock(&policy).restrict(&self.candidates());
        }
        Ok(())
    }

    /// The paths an `Auto` policy may choose from: the splits both the phone and the server hold
    /// (the phone's alone while the server was never reached), then cloud-only and mobile-only.
    pub fn candidates(&self) -> Vec<Choice> {
        let server = lock(&self.server_splits).clone();
        let mut out: Vec<Choice> = self
            .phone
            .splits()
            .into_iter()
            .filter(|s| server.as_ref().is_none_or(|srv| srv.contains(s)))
            .map(Choice::Split)
            .collect();
        out.push(Choice::CloudOnly);
        out.push(Choice::MobileOnly);
        out
    }

    /// Whether the client currently believes the server usable.
    pub fn server_up(&self) -> bool {
        lock(&self.link).up
    }

    /// Asks the server for its status (models, splits, load).
    pub async fn server_status(&self) -> Result<StatusReply> {
        let mut req = Request::new(StatusRequest::default());
        req.set_timeout(self.timeout);
        let reply = tokio::time::timeout(self.timeout, self.rpc.clone().status(req))
            .await
            .map_err(|_| Error::Rpc(Status::deadline_exceeded("status probe timed out")))??;
        Ok(reply.into_inner())
    }

    /// One probe: marks the link up when the server answers, serves the model and has room in
    /// its queue, down otherwise; tells the policy either way.
    async fn probe_once(&self) -> Result<StatusReply> {
        probe(
            &self.rpc,
            &self.model,
            self.timeout,
            &self.link,
            self.policy(),
        )
        .await
    }

    fn policy(&self) -> Option<SharedPolicy> {
        match &self.mode {
            Mode::Auto(p) => Some(Arc::clone(p)),
            Mode::Fixed(_) => None,
        }
    }

    fn observe(&self, obs: &Observation) {
        if let Some(p) = self.policy() {
            lock(&p).observe(obs);
        }
    }

    /// The path of the next request, and the failure that forced mobile-only when the server
    /// is down (a fallback); then a background probe is started every `probe_every` requests or
    /// `probe_interval`.
    fn decide(&self) -> (Choice, Option<Code>) {
        if let Mode::Fixed(Choice::MobileOnly) = self.mode {
            return (Choice::MobileOnly, None);
        }
        {
            let mut link = lock(&self.link);
            if !link.up {
                link.requests_since_probe += 1;
                let due = link.requests_since_probe >= self.probe_every
                    || link.last_probe.elapsed() >= self.probe_interval;
                if due && !link.probing {
                    link.probing = true;
                    link.requests_since_probe = 0;
                    link.last_probe = Instant::now();
                    let (rpc, model, timeout, link2, policy) = (
                        self.rpc.clone(),
                        self.model.clone(),
                        self.timeout,
                        Arc::clone(&self.link),
                        self.policy(),
                    );
                    tokio::spawn(async move {
                        let _ = probe(&rpc, &model, timeout, &link2, policy).await;
                    });
                }
                return (Choice::MobileOnly, Some(link.last_failure.unwrap_or(Code::Unavailable)));
            }
        }
        let choice = match &self.mode {
            Mode::Fixed(c) => c.clone(),
            Mode::Auto(p) => {
                self.probe_uplink_if_due(p);
                lock(p).choose()
            }
        };
        (choice, None)
    }

    /// Under auto, starts a background probe of the up-link when one is due
    /// ([`crate::uplink_probe`]).
    fn probe_uplink_if_due(&self, policy: &SharedPolicy) {
        if lock(policy).wants_uplink_probe() && self.prober.start_if_due() {
            tokio::spawn(uplink_probe::probe_and_tell(uplink_probe::ProbeTask {
                rpc: self.rpc.clone(),
                pacer: self.pacer.clone(),
                timeout: self.timeout,
                model: self.model.clone(),
                uplink: Arc::clone(&self.uplink),
                prober: Arc::clone(&self.prober),
                policy: Arc::clone(policy),
            }));
        }
    }

    /// What the up-link probes have sent so far.
    pub fn uplink_probe_stats(&self) -> ProbeStats {
        self.prober.stats()
    }

    fn mark_down(&self, code: Code) {
        let mut link = lock(&self.link);
        link.last_failure = Some(code);
        if link.up {
            link.up = false;
            link.requests_since_probe = 0;
            link.last_probe = Instant::now();
        }
    }

    /// Classifies one image. Every image gets an answer while the phone half works: when the
    /// server path fails with an availability error the phone answers alone.
    pub async fn infer(&self, image: &Image) -> Result<Answer> {
        let start = Instant::now();
        let request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(message) = lock(&self.link).refused.clone() {
            return Err(Error::Unauthenticated(message));
        }
        let image = Arc::new(image.clone());
        let (choice, forced) = self.decide();
        if !choice.uses_server() {
            let answer = self.on_phone(&image, start, request_id, forced, 0.0).await?;
            let reachable = lock(&self.link).up;
            self.observe(&Observation {
                served_by: Some(Choice::MobileOnly),
                reachable,
                tm_ms: Some(answer.tm_ms),
                ..Observation::default()
            });
            return Ok(answer);
        }
        match self.remote(&choice, &image, start, request_id).await {
            Ok((answer, obs)) => {
                self.observe(&obs);
                Ok(answer)
            }
            Err(RemoteFailure::Fallback { tm_ms, status }) => {
                let code = code_name(status.code());
                if server_fault(status.code()) {
                    tracing::warn!(code, message = status.message(), "the server failed the request; answering on the phone");
                } else {
                    tracing::debug!(code, message = status.message(), "server path failed; answering on the phone");
                }
                self.mark_down(status.code());
                let answer = self
                    .on_phone(&image, start, request_id, Some(status.code()), tm_ms)
                    .await?;
                self.observe(&Observation {
                    served_by: Some(Choice::MobileOnly),
                    reachable: false,
                    tm_ms: Some(answer.tm_ms),
                    ..Observation::default()
                });
                Ok(answer)
            }
            Err(RemoteFailure::Fatal(e)) => Err(e),
        }
    }

    /// The whole network on the phone; `spent_ms` is phone time already spent on a failed path.
    async fn on_phone(
        &self,
        image: &Arc<Image>,
        start: Instant,
        request_id: u64,
        fallback_status: Option<Code>,
        spent_ms: f64,
    ) -> Result<Answer> {
        let phone = Arc::clone(&self.phone);
        let img = Arc::clone(image);
        let t0 = Instant::now();
        let logits = on_this_thread(move || phone.full(&img)).await?;
        let tm_ms = spent_ms + ms(t0.elapsed());
        Ok(Answer {
            request_id,
            top_k: top_k(&logits, self.top_k as usize, self.phone.class_names()),
            served_by: Choice::MobileOnly,
            fell_back: fallback_status.is_some(),
            fallback_status,
            tm_ms,
            upload_ms: 0.0,
            tc_ms: 0.0,
            total_ms: ms(start.elapsed()),
            bytes: 0,
            wire_bytes: 0.0,
            batch_size: 0,
            reported_tc_ms: 0.0,
        })
    }

    /// Head (or JPEG) on the phone, upload, tail on the server.
    async fn remote(
        &self,
        choice: &Choice,
        image: &Arc<Image>,
        start: Instant,
        request_id: u64,
    ) -> std::result::Result<(Answer, Observation), RemoteFailure> {
        let phone = Arc::clone(&self.phone);
        let img = Arc::clone(image);
        let path = choice.clone();
        let quality = self.jpeg_quality;
        let t0 = Instant::now();
        let payload = on_this_thread(move || match &path {
            Choice::Split(split) => phone.encode(split, &img),
            Choice::CloudOnly => phone.jpeg_input(&img, quality),
            Choice::MobileOnly => Err(Error::InvalidArgument("mobile-only has no payload".into())),
        })
        .await?;
        let tm_ms = ms(t0.elapsed());
        let bytes = payload.len();
        let paced = match &self.pacer {
            Some(p) => p.send(bytes).await,
            None => Duration::ZERO,
        };

        let upload_start = self.prober.upload_start();
        let sent = Instant::now();
        let mut rpc = self.rpc.clone();
        let call = async {
            let mut payload = payload;
            if let Some(stream) = self.stream.as_ref().filter(|s| s.usable()) {
                match stream.call(&self.rpc, request_id, choice.name(), payload).await {
                    Sent::Reply(outcome) => return outcome.map(tonic::Response::new),
                    // An older server: one request per image from now on.
                    Sent::Unsupported(back) => payload = back,
                }
            }
            match choice {
                Choice::Split(split) => {
                    let mut req = Request::new(InferRequest {
                        model: self.model.clone(),
                        split: split.clone(),
                        frame: payload,
                        request_id,
                        top_k: self.top_k,
                    });
                    req.set_timeout(self.timeout);
                    rpc.infer(req).await
                }
                _ => {
                    let mut req = Request::new(InferImageRequest {
                        model: self.model.clone(),
                        jpeg: payload,
                        request_id,
                        top_k: self.top_k,
                    });
                    req.set_timeout(self.timeout);
                    rpc.infer_image(req).await
                }
            }
        };
        // The server honours the deadline too; this bounds a silent (black-holed) link.
        let result = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(
                    "no answer within the request timeout",
                ))
            });
        let rtt = sent.elapsed();
        let reply: InferReply = match result {
            Ok(r) => r.into_inner(),
            Err(status) if server_unusable(status.code()) => {
                return Err(RemoteFailure::Fallback { tm_ms, status });
            }
            Err(status) if refuses_credentials(status.code()) => {
                return Err(RemoteFailure::Fatal(Error::Unauthenticated(
                    status.message().to_string(),
                )));
            }
            Err(status) => return Err(RemoteFailure::Fatal(Error::Rpc(status))),
        };
        if reply.request_id != request_id {
            return Err(RemoteFailure::Fatal(Error::Model(format!(
                "server answered request {} for request {request_id}",
                reply.request_id
            ))));
        }
        let server = Duration::from_micros(reply.queue_us.saturating_add(reply.service_us));
        let upload = paced + rtt.saturating_sub(server);
        let upload_ms = ms(upload);
        let tc_ms = ms(server);
        let top = reply
            .top_k
            .iter()
            .map(|c| ClassScore {
                index: c.index as usize,
                label: c.label.clone(),
                score: c.score,
            })
            .collect();
        let wire_bytes = bytes as f64 + self.wire_overhead_bytes;
        let load = reply.load.unwrap_or_default();
        let answer = Answer {
            request_id,
            top_k: top,
            served_by: choice.clone(),
            fell_back: false,
            fallback_status: None,
            tm_ms,
            upload_ms,
            tc_ms,
            total_ms: ms(start.elapsed()),
            bytes,
            wire_bytes,
            batch_size: reply.batch_size,
            reported_tc_ms: (load.smoothed_service_us + load.smoothed_queue_us) as f64 / 1e3,
        };
        // A throughput sample only from a transfer long enough to time (issue #14: a tiny
        // frame's time is the round trip, not the link), and that had the link to itself.
        let uplink_mbps = if self.prober.overlapped(&upload_start) {
            None
        } else {
            lock(&self.uplink).record(wire_bytes, upload_ms)
        };
        let obs = Observation {
            served_by: Some(choice.clone()),
            reachable: true,
            bytes,
            wire_bytes,
            tm_ms: Some(tm_ms),
            upload_ms: Some(upload_ms),
            uplink_mbps,
            tc_ms: Some(tc_ms),
            queue_depth: Some(load.queue_depth),
            loads: SplitLoad::from_reported(choice.name(), load.smoothed_service_us, load.smoothed_queue_us).into_iter().collect(),
        };
        Ok((answer, obs))
    }
}

#[cfg(test)]
mod tests;
