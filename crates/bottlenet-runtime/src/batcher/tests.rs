//! Unit tests of `batcher.rs`.

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
