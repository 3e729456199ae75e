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
mod tests {
    use super::*;
    use bottlenet_codec::Shape;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A cloud half whose "tail" returns the batch size and the sample's first value, and whose
    /// image path reads the first byte, so batching is visible in the outputs.
    #[derive(Debug, Default)]
    struct Echo {
        batches: AtomicUsize,
    }

    impl CloudHalf for Echo {
        fn model_name(&self) -> &str {
            "echo"
        }
        fn class_names(&self) -> &[String] {
            &[]
        }
        fn splits(&self) -> Vec<String> {
            vec!["s".into()]
        }
        fn feature_shape(&self, split: &str) -> Option<Shape> {
            (split == "s").then_some(Shape::new(1, 1, 1))
        }
        fn codec_params(&self, split: &str) -> Option<bottlenet_codec::CodecParams> {
            (split == "s").then(bottlenet_codec::CodecParams::paper)
        }
        fn tail(&self, _split: &str, features: &[FeatureTensor]) -> Result<Vec<Vec<f32>>> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            Ok(features
                .iter()
                .map(|f| vec![features.len() as f32, f.data[0]])
                .collect())
        }
        fn decode_image(&self, jpeg: &[u8]) -> Result<FeatureTensor> {
            let first = *jpeg
                .first()
                .ok_or_else(|| Error::InvalidImage("empty".into()))?;
            if first == 0xFF {
                panic!("poisoned image");
            }
            Ok(FeatureTensor::new(
                Shape::new(1, 1, 1),
                vec![f32::from(first)],
            )?)
        }
        fn full(&self, inputs: &[FeatureTensor]) -> Result<Vec<Vec<f32>>> {
            self.tail("s", inputs)
        }
    }

    fn start(max_batch: usize, max_delay_ms: u64, max_queue: usize) -> (Dispatcher, Arc<Echo>) {
        let echo = Arc::new(Echo::default());
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let cfg = BatchConfig {
            max_batch,
            max_delay: Duration::from_millis(max_delay_ms),
            max_queue,
            workers: 1,
        };
        let models: Vec<Arc<dyn CloudHalf>> = vec![echo.clone()];
        (
            Dispatcher::start(models, cfg, metrics).expect("start"),
            echo,
        )
    }

    fn image() -> Route {
        Route {
            model: 0,
            split: CLOUD_ONLY.into(),
        }
    }

    #[test]
    fn requests_queued_together_share_a_batch_and_keep_their_order() {
        // A long delay: the batch starts because it is full, not because of time.
        let (d, echo) = start(4, 60_000, 16);
        let rxs: Vec<_> = (1..=4u8)
            .map(|i| d.submit(image(), vec![i], None).expect("queued"))
            .collect();
        for (i, rx) in rxs.into_iter().enumerate() {
            let served = rx.blocking_recv().expect("answered").expect("served");
            assert_eq!(served.batch_size, 4);
            assert_eq!(served.logits, vec![4.0, (i + 1) as f32]);
        }
        assert_eq!(echo.batches.load(Ordering::SeqCst), 1);
        d.close();
        d.join();
    }

    #[test]
    fn a_partial_batch_starts_after_max_delay() {
        let (d, _) = start(8, 5, 16);
        let rx = d.submit(image(), vec![7], None).expect("queued");
        let served = rx.blocking_recv().expect("answered").expect("served");
        assert_eq!(served.logits, vec![1.0, 7.0]);
    }

    #[test]
    fn a_full_queue_refuses_instead_of_growing() {
        // Huge delay and batch: nothing gets taken, so the queue fills.
        let (d, _) = start(100, 60_000, 2);
        let _a = d.submit(image(), vec![1], None).expect("queued");
        let _b = d.submit(image(), vec![2], None).expect("queued");
        assert!(matches!(
            d.submit(image(), vec![3], None),
            Err(Error::QueueFull(2))
        ));
        assert_eq!(d.queue_depth(), 2);
        // Closing drains what was queued.
        d.close();
        assert_eq!(
            _a.blocking_recv()
                .expect("answered")
                .expect("served")
                .batch_size,
            2
        );
        assert!(matches!(
            d.submit(image(), vec![4], None),
            Err(Error::ShuttingDown)
        ));
        d.join();
    }

    #[test]
    fn expired_requests_are_dropped_unserved() {
        let (d, echo) = start(100, 60_000, 8);
        let past = Instant::now();
        let rx = d.submit(image(), vec![1], Some(past)).expect("queued");
        d.close();
        assert!(matches!(
            rx.blocking_recv().expect("answered"),
            Err(Error::DeadlineExceeded)
        ));
        d.join();
        assert_eq!(echo.batches.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn bad_inputs_and_panics_fail_only_their_own_request() {
        let (d, _) = start(3, 60_000, 8);
        let bad = d.submit(image(), vec![], None).expect("queued");
        let panics = d.submit(image(), vec![0xFF], None).expect("queued");
        let good = d.submit(image(), vec![9], None).expect("queued");
        assert!(matches!(
            bad.blocking_recv().expect("answered"),
            Err(Error::InvalidImage(_))
        ));
        assert!(matches!(
            panics.blocking_recv().expect("answered"),
            Err(Error::Model(_))
        ));
        assert_eq!(
            good.blocking_recv()
                .expect("answered")
                .expect("served")
                .logits,
            vec![1.0, 9.0]
        );
        // The worker survived the panic.
        let again = d.submit(image(), vec![3], None).expect("queued");
        d.close();
        assert!(again.blocking_recv().expect("answered").is_ok());
        d.join();
        assert_eq!(d.load(&image()).served, 2);
    }

    #[test]
    fn malformed_and_misshapen_frames_are_invalid() {
        let (d, _) = start(1, 0, 8);
        let route = Route {
            model: 0,
            split: "s".into(),
        };
        let rx = d.submit(route.clone(), vec![0; 10], None).expect("queued");
        assert!(matches!(
            rx.blocking_recv().expect("answered"),
            Err(Error::Frame(_))
        ));
        let wrong = FeatureTensor::new(Shape::new(2, 1, 1), vec![0.5, 1.0]).expect("tensor");
        let frame = bottlenet_codec::encode(&wrong, &bottlenet_codec::CodecParams::paper())
            .expect("encode");
        let rx = d.submit(route, frame, None).expect("queued");
        assert!(matches!(
            rx.blocking_recv().expect("answered"),
            Err(Error::FrameShape { .. })
        ));
    }
}
