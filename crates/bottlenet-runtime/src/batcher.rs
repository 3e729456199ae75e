//! The server's bounded request queue and its dynamic batcher.
//!
//! Invariants:
//! * at most `max_queue` requests wait at any time; one more is refused (`QueueFull`), so memory
//!   never grows with load;
//! * a batch holds requests of ONE route (model + split, or model + cloud-only), at most
//!   `max_batch` of them, and starts once it is full or its oldest request has waited
//!   `max_delay`;
//! * model code runs only on the dedicated worker threads started here, never on the async
//!   reactor; a panic in model code fails that batch, not the worker;
//! * a request whose deadline passed, or whose caller went away, while queued is dropped
//!   unserved;
//! * after `close`, nothing new is accepted and the workers finish everything queued, then exit.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bottlenet_codec::FeatureTensor;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{CLOUD_ONLY, CloudHalf};
use crate::route_load::RouteLoad;

/// Where a request goes: a model, and one of its splits or [`CLOUD_ONLY`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    pub model: usize,
    pub split: String,
}

impl Route {
    fn is_image(&self) -> bool {
        self.split == CLOUD_ONLY
    }
}

/// What a served request gets back from its batch.
#[derive(Debug)]
pub(crate) struct Served {
    pub logits: Vec<f32>,
    pub queue: Duration,
    /// Decode + tail of the whole batch.
    pub service: Duration,
    pub batch_size: usize,
}

#[derive(Debug)]
struct Job {
    payload: Vec<u8>,
    enqueued: Instant,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Served>>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchConfig {
    pub max_batch: usize,
    pub max_delay: Duration,
    pub max_queue: usize,
    pub workers: usize,
}

#[derive(Debug, Default)]
struct Queue {
    routes: HashMap<Route, VecDeque<Job>>,
    total: usize,
    closed: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    config: BatchConfig,
    models: Vec<Arc<dyn CloudHalf>>,
    metrics: Arc<Metrics>,
    load: Mutex<HashMap<Route, RouteLoad>>,
}

pub(crate) struct Dispatcher {
    inner: Arc<Inner>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections here never leave the data half-updated, so a poisoned lock is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Dispatcher {
    pub fn start(
        models: Vec<Arc<dyn CloudHalf>>,
        config: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        if config.max_batch == 0 || config.max_queue == 0 || config.workers == 0 {
            return Err(Error::Config(
                "max_batch, max_queue and workers must be at least 1".into(),
            ));
        }
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            config,
            models,
            metrics,
            load: Mutex::new(HashMap::new()),
        });
        let mut workers = Vec::with_capacity(config.workers);
        for i in 0..config.workers {
            let inner = Arc::clone(&inner);
            let handle = std::thread::Builder::new()
                .name(format!("bottlenet-worker-{i}"))
                .spawn(move || worker(&inner))?;
            workers.push(handle);
        }
        Ok(Dispatcher {
            inner,
            workers: Mutex::new(workers),
        })
    }

    /// Queues one request; refuses it at once when the queue is full or closed.
    pub fn submit(
        &self,
        route: Route,
        payload: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<oneshot::Receiver<Result<Served>>> {
        let (reply, rx) = oneshot::channel();
        let mut q = lock(&self.inner.queue);
        if q.closed {
            return Err(Error::ShuttingDown);
        }
        if q.total >= self.inner.config.max_queue {
            return Err(Error::QueueFull(q.total));
        }
        q.routes.entry(route).or_default().push_back(Job {
            payload,
            enqueued: Instant::now(),
            deadline,
            reply,
        });
        q.total += 1;
        self.inner.metrics.queue_depth.set(gauge(q.total));
        drop(q);
        self.inner.wake.notify_one();
        Ok(rx)
    }

    pub fn queue_depth(&self) -> usize {
        lock(&self.inner.queue).total
    }

    /// The route's load as clients are told it ([`RouteLoad::reported`]).
    pub fn load(&self, route: &Route) -> RouteLoad {
        lock(&self.inner.load)
            .get(route)
            .copied()
            .unwrap_or_default()
            .reported()
    }

    /// Stops taking requests; workers drain the queue and exit.
    pub fn close(&self) {
        lock(&self.inner.queue).closed = true;
        self.inner.wake.notify_all();
    }

    /// Blocks until every worker has exited (call after [`close`](Self::close), off the reactor).
    pub fn join(&self) {
        let handles = std::mem::take(&mut *lock(&self.workers));
        for handle in handles {
            // A worker only ends by returning: model panics are caught per batch.
            let _ = handle.join();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.close();
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

enum Next {
    Batch(Route, Vec<(Job, Duration)>),
    Exit,
}

fn worker(inner: &Inner) {
    loop {
        match next_batch(inner) {
            Next::Batch(route, jobs) => run_batch(inner, &route, jobs),
            Next::Exit => return,
        }
    }
}

/// Waits for a route that is ready (full batch, oldest request waited `max_delay`, or closing)
/// and takes up to `max_batch` live requests from it.
fn next_batch(inner: &Inner) -> Next {
    let cfg = inner.config;
    let mut q = lock(&inner.queue);
    loop {
        let now = Instant::now();
        let mut ready: Option<(Instant, Route)> = None;
        let mut earliest_due: Option<Instant> = None;
        for (route, jobs) in &q.routes {
            let Some(head) = jobs.front() else { continue };
            let due = head.enqueued + cfg.max_delay;
            if q.closed || jobs.len() >= cfg.max_batch || due <= now {
                if ready.as_ref().is_none_or(|(t, _)| head.enqueued < *t) {
                    ready = Some((head.enqueued, route.clone()));
                }
            } else if earliest_due.is_none_or(|t| due < t) {
                earliest_due = Some(due);
            }
        }
        if let Some((_, route)) = ready {
            let jobs = take_live(inner, &mut q, &route, now);
            if q.total > 0 {
                // Another route may be ready too: let an idle worker look.
                inner.wake.notify_one();
            }
            if jobs.is_empty() {
                continue;
            }
            return Next::Batch(route, jobs);
        }
        if q.closed && q.total == 0 {
            return Next::Exit;
        }
        q = match earliest_due {
            Some(due) => {
                inner
                    .wake
                    .wait_timeout(q, due.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => inner.wake.wait(q).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// Pops up to `max_batch` requests of `route`, answering expired ones with `DeadlineExceeded`
/// and skipping those whose caller is gone; returns each live job with its queueing time.
fn take_live(inner: &Inner, q: &mut Queue, route: &Route, now: Instant) -> Vec<(Job, Duration)> {
    let mut taken = Vec::new();
    let mut popped = 0;
    if let Some(jobs) = q.routes.get_mut(route) {
        while taken.len() < inner.config.max_batch {
            let Some(job) = jobs.pop_front() else { break };
            popped += 1;
            if job.reply.is_closed() {
                inner
                    .metrics
                    .dropped
                    .with_label_values(&["cancelled"])
                    .inc();
            } else if job.deadline.is_some_and(|d| d <= now) {
                inner.metrics.dropped.with_label_values(&["deadline"]).inc();
                let _ = job.reply.send(Err(Error::DeadlineExceeded));
            } else {
                let waited = now.saturating_duration_since(job.enqueued);
                taken.push((job, waited));
            }
        }
        if jobs.is_empty() {
            q.routes.remove(route);
        }
    }
    q.total -= popped;
    inner.metrics.queue_depth.set(gauge(q.total));
    taken
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_string())
}

/// Runs untrusted-input model code, turning a panic into `Error::Model`.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(Error::Model(format!(
            "model panicked: {}",
            panic_message(&*p)
        )))
    })
}

fn decode_one(model: &dyn CloudHalf, route: &Route, payload: &[u8]) -> Result<FeatureTensor> {
    if route.is_image() {
        return model.decode_image(payload);
    }
    let unknown = || Error::UnknownSplit {
        model: model.model_name().to_string(),
        split: route.split.clone(),
    };
    let expected = model.feature_shape(&route.split).ok_or_else(unknown)?;
    let params = model.codec_params(&route.split).ok_or_else(unknown)?;
    // JPEG⁻¹ + untile + dequantize (paper §2.2), shared with training through the codec crate;
    // a version-2 frame takes shape and codec from the split's manifest.
    let spec = bottlenet_codec::FrameSpec { shape: expected, params };
    let tensor = bottlenet_codec::decode_with(payload, &spec)?;
    if tensor.shape != expected {
        return Err(Error::FrameShape {
            split: route.split.clone(),
            got: tensor.shape.to_string(),
            expected: expected.to_string(),
        });
    }
    Ok(tensor)
}

/// Copies an error for every request of a failed batch (errors are not `Clone`), keeping its
/// gRPC class.
fn replicate(err: &Error) -> Error {
    match err {
        Error::Frame(_)
        | Error::FrameShape { .. }
        | Error::FrameMismatch { .. }
        | Error::InvalidImage(_)
        | Error::InvalidArgument(_) => Error::InvalidArgument(err.to_string()),
        _ => Error::Model(err.to_string()),
    }
}

/// Answers every request of a batch the model failed on with (a copy of) its error, and logs it.
fn fail_batch(labels: &[&str; 2], live: Vec<(Job, Duration)>, err: &Error) {
    tracing::error!(
        model = labels[0],
        split = labels[1],
        batch_size = live.len(),
        error = %err,
        "batch failed"
    );
    for (job, _) in live {
        let _ = job.reply.send(Err(replicate(err)));
    }
}

fn run_batch(inner: &Inner, route: &Route, jobs: Vec<(Job, Duration)>) {
    let model = &*inner.models[route.model];
    let labels = [model.model_name(), route.split.as_str()];
    let start = Instant::now();
    let mut live = Vec::with_capacity(jobs.len());
    let mut inputs = Vec::with_capacity(jobs.len());
    for (job, waited) in jobs {
        inner
            .metrics
            .queue_seconds
            .with_label_values(&labels)
            .observe(waited.as_secs_f64());
        match guarded(|| decode_one(model, route, &job.payload)) {
            Ok(tensor) => {
                inputs.push(tensor);
                live.push((job, waited));
            }
            // A bad frame fails its own request only, never its batch mates.
            Err(err) => {
                if matches!(err, Error::Model(_)) {
                    tracing::error!(model = labels[0], split = labels[1], error = %err, "decode failed");
                } else {
                    tracing::debug!(model = labels[0], split = labels[1], error = %err, "bad input refused");
                }
                let _ = job.reply.send(Err(err));
            }
        }
    }
    let decode_time = start.elapsed();
    inner
        .metrics
        .decode_seconds
        .with_label_values(&labels)
        .observe(decode_time.as_secs_f64());
    if live.is_empty() {
        return;
    }
    let tail_start = Instant::now();
    let outcome = guarded(|| {
        if route.is_image() {
            model.full(&inputs)
        } else {
            model.tail(&route.split, &inputs)
        }
    });
    let tail_time = tail_start.elapsed();
    let service = start.elapsed();
    let batch_size = live.len();
    inner
        .metrics
        .tail_seconds
        .with_label_values(&labels)
        .observe(tail_time.as_secs_f64());
    inner
        .metrics
        .batch_size
        .with_label_values(&labels)
        .observe(batch_size as f64);

    {
        let mut load = lock(&inner.load);
        let entry = load.entry(route.clone()).or_default();
        let mean_wait = live.iter().map(|(_, w)| w.as_secs_f64()).sum::<f64>() / batch_size as f64;
        entry.record(service.as_secs_f64() * 1e6, mean_wait * 1e6, batch_size, Instant::now());
    }

    match outcome {
        Ok(logits) if logits.len() == batch_size => {
            for ((job, waited), logits) in live.into_iter().zip(logits) {
                let _ = job.reply.send(Ok(Served {
                    logits,
                    queue: waited,
                    service,
                    batch_size,
                }));
            }
        }
        Ok(logits) => {
            let err = Error::Model(format!(
                "model returned {} outputs for a batch of {batch_size}",
                logits.len()
            ));
            fail_batch(&labels, live, &err);
        }
        Err(err) => fail_batch(&labels, live, &err),
    }
}

#[cfg(test)]
mod tests;
