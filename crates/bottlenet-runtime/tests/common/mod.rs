//! A small deterministic fake model for the runtime tests, and helpers to run a server on
//! 127.0.0.1:0 that stops by itself.
//!
//! The fake network: the input is a 1×28×28 8-bit image. The head of a split average-pools it
//! to the split's H'×W' and makes channel `c` equal to `(c+1)·pool + 0.1·c`; the frame is the
//! real `bottlenet_codec` wire frame (jpeg-abbrev, q20, 8 bits). The tail decodes nothing itself
//! (the server decodes) and returns, for class `k`, the mean of the k-th tenth of the features
//! (flat CHW order): different images give different answers, so a mixed-up batch shows.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bottlenet_codec::codec::{GrayImage, ImageCodec};
use bottlenet_codec::jpeg::Jpeg;
use bottlenet_codec::{CodecParams, FeatureTensor, Shape};
use bottlenet_runtime::{CloudHalf, Error, Image, PhoneHalf, Result, Server, ServerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MODEL: &str = "fake";
pub const CLASSES: usize = 10;
pub const SIDE: usize = 28;

/// (split, feature shape) of the fake network.
pub const SPLITS: [(&str, Shape); 3] = [
    ("rb1", Shape::new(2, 14, 14)),
    ("rb4", Shape::new(4, 7, 7)),
    ("rb14", Shape::new(8, 4, 4)),
];

pub fn class_names() -> Vec<String> {
    (0..CLASSES).map(|k| format!("class-{k}")).collect()
}

fn shape_of(split: &str) -> Option<Shape> {
    SPLITS
        .iter()
        .find(|(s, _)| *s == split)
        .map(|(_, shape)| *shape)
}

/// Logit `k` = mean of the k-th tenth of `values`.
pub fn region_means(values: &[f32]) -> Vec<f32> {
    (0..CLASSES)
        .map(|k| {
            let lo = k * values.len() / CLASSES;
            let hi = ((k + 1) * values.len() / CLASSES)
                .max(lo + 1)
                .min(values.len());
            values[lo..hi].iter().sum::<f32>() / (hi - lo) as f32
        })
        .collect()
}

pub fn head(split: &str, image: &Image) -> Result<FeatureTensor> {
    let shape = shape_of(split).ok_or_else(|| Error::UnknownSplit {
        model: MODEL.into(),
        split: split.into(),
    })?;
    let (fy, fx) = (
        image.height.div_ceil(shape.height),
        image.width.div_ceil(shape.width),
    );
    let mut data = Vec::with_capacity(shape.len());
    for c in 0..shape.channels {
        for y in 0..shape.height {
            for x in 0..shape.width {
                let (mut sum, mut n) = (0.0f32, 0usize);
                for yy in (y * fy)..((y + 1) * fy).min(image.height) {
                    for xx in (x * fx)..((x + 1) * fx).min(image.width) {
                        sum += f32::from(image.pixels[yy * image.width + xx]) / 255.0;
                        n += 1;
                    }
                }
                let pool = if n == 0 { 0.0 } else { sum / n as f32 };
                data.push((c + 1) as f32 * pool + 0.1 * c as f32);
            }
        }
    }
    Ok(FeatureTensor::new(shape, data)?)
}

pub fn image_to_tensor(pixels: &[u8]) -> Result<FeatureTensor> {
    Ok(FeatureTensor::new(
        Shape::new(1, SIDE, SIDE),
        pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
    )?)
}

/// A gate the fake model's batches wait at until the test opens it (deterministic queue tests).
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().expect("gate") = true;
        self.opened.notify_all();
    }
    fn pass(&self) {
        let mut open = self.open.lock().expect("gate");
        while !*open {
            open = self.opened.wait(open).expect("gate");
        }
    }
}

/// The server half. `delay` makes each batch slow, `gate` holds each batch until opened,
/// `fail` makes every batch fail (a model error: INTERNAL); `computed` counts samples run,
/// `batches` batches begun.
#[derive(Debug, Default)]
pub struct FakeCloud {
    pub names: Vec<String>,
    pub delay: Duration,
    pub gate: Option<Arc<Gate>>,
    pub fail: bool,
    pub computed: AtomicUsize,
    pub batches: AtomicUsize,
}

impl FakeCloud {
    pub fn new() -> Self {
        FakeCloud {
            names: class_names(),
            ..Default::default()
        }
    }
    pub fn slow(delay: Duration) -> Self {
        FakeCloud {
            names: class_names(),
            delay,
            ..Default::default()
        }
    }
    pub fn gated(gate: Arc<Gate>) -> Self {
        FakeCloud {
            names: class_names(),
            gate: Some(gate),
            ..Default::default()
        }
    }
    pub fn failing() -> Self {
        FakeCloud {
            names: class_names(),
            fail: true,
            ..Default::default()
        }
    }
    pub fn computed(&self) -> usize {
        self.computed.load(Ordering::SeqCst)
    }
    pub fn batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }
    fn work(&self, n: usize) -> Result<()> {
        self.computed.fetch_add(n, Ordering::SeqCst);
        self.batches.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if self.fail {
            return Err(Error::model("injected model failure"));
        }
        Ok(())
    }
}

impl CloudHalf for FakeCloud {
    fn model_name(&self) -> &str {
        MODEL
    }
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn splits(&self) -> Vec<String> {
        SPLITS.iter().map(|(s, _)| s.to_string()).collect()
    }
    fn feature_shape(&self, split: &str) -> Option<Shape> {
        shape_of(split)
    }
    fn codec_params(&self, split: &str) -> Option<CodecParams> {
        shape_of(split).map(|_| CodecParams::paper())
    }
    fn tail(&self, split: &str, features: &[FeatureTensor]) -> Result<Vec<Vec<f32>>> {
        let shape = shape_of(split).ok_or_else(|| Error::UnknownSplit {
            model: MODEL.into(),
            split: split.into(),
        })?;
        assert!(
            features.iter().all(|f| f.shape == shape),
            "server must check shapes before the tail"
        );
        self.work(features.len())?;
        Ok(features.iter().map(|f| region_means(&f.data)).collect())
    }
    fn decode_image(&self, jpeg: &[u8]) -> Result<FeatureTensor> {
        let pixels = Jpeg { quality: 90 }
            .decode(jpeg, SIDE, SIDE)
            .map_err(|e| Error::InvalidImage(e.to_string()))?;
        image_to_tensor(&pixels)
    }
    fn full(&self, inputs: &[FeatureTensor]) -> Result<Vec<Vec<f32>>> {
        self.work(inputs.len())?;
        Ok(inputs.iter().map(|f| region_means(&f.data)).collect())
    }
}

/// The phone half.
#[derive(Debug)]
pub struct FakePhone {
    pub names: Vec<String>,
    pub splits: Vec<String>,
}

impl FakePhone {
    pub fn new() -> Self {
        FakePhone {
            names: class_names(),
            splits: SPLITS.iter().map(|(s, _)| s.to_string()).collect(),
        }
    }
}

impl PhoneHalf for FakePhone {
    fn model_name(&self) -> &str {
        MODEL
    }
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn splits(&self) -> Vec<String> {
        self.splits.clone()
    }
    fn encode(&self, split: &str, image: &Image) -> Result<Vec<u8>> {
        Ok(bottlenet_codec::encode(
            &head(split, image)?,
            &CodecParams::paper(),
        )?)
    }
    fn full(&self, image: &Image) -> Result<Vec<f32>> {
        Ok(region_means(&image_to_tensor(&image.pixels)?.data))
    }
    fn jpeg_input(&self, image: &Image, quality: u8) -> Result<Vec<u8>> {
        let gray = GrayImage {
            width: image.width,
            height: image.height,
            pixels: image.pixels.clone(),
        };
        Jpeg { quality }
            .encode(&gray)
            .map_err(|e| Error::InvalidImage(e.to_string()))
    }
}

/// `n` deterministic random 28×28 images with smooth structure (so the JPEG path keeps the
/// region means apart) and their "labels" (the fake network's own mobile-only answer).
pub fn images(n: usize, seed: u64) -> Vec<Image> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            // One brightness per tenth of the image, so every class region differs clearly.
            let levels: Vec<u8> = (0..CLASSES).map(|_| rng.random_range(0..=255)).collect();
            let pixels = (0..SIDE * SIDE)
                .map(|i| levels[i * CLASSES / (SIDE * SIDE)])
                .collect();
            Image::new(1, SIDE, SIDE, pixels).expect("image")
        })
        .collect()
}

/// The top-1 class the in-process fake model gives for `split` (frame path, same codec).
pub fn expected_logits(
    cloud: &FakeCloud,
    phone: &FakePhone,
    split: &str,
    image: &Image,
) -> Vec<f32> {
    if split == bottlenet_runtime::CLOUD_ONLY {
        let jpeg = phone.jpeg_input(image, 90).expect("jpeg");
        let input = cloud.decode_image(&jpeg).expect("decode image");
        return cloud.full(&[input]).expect("full").remove(0);
    }
    let frame = phone.encode(split, image).expect("encode");
    let features = bottlenet_codec::decode(&frame).expect("decode");
    cloud.tail(split, &[features]).expect("tail").remove(0)
}

/// A server on 127.0.0.1:0 running in the background until [`Running::stop`] (or drop).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown; waits until the server returned.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("server stops in time")
            .expect("server task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn loopback_config() -> ServerConfig {
    ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        workers: 2,
        ..ServerConfig::default()
    }
}

pub async fn start(config: ServerConfig, cloud: Arc<dyn CloudHalf>) -> Running {
    let server = Server::bind(config, vec![cloud]).await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let metrics = server.metrics_addr().expect("metrics addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        metrics,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A raw generated client, for tests that speak the protocol directly.
pub async fn raw_client(
    running: &Running,
) -> bottlenet_runtime::proto::bottle_net_client::BottleNetClient<tonic::transport::Channel> {
    bottlenet_runtime::proto::bottle_net_client::BottleNetClient::connect(running.url())
        .await
        .expect("connect")
}

pub fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

/// `GET /metrics` over a plain TCP connection (HTTP/1.1, connection: close).
pub async fn fetch_metrics(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("metrics request");
    let mut body = Vec::new();
    stream
        .read_to_end(&mut body)
        .await
        .expect("metrics response");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// A valid request through the raw client; asserts the answer equals the in-process model (a
/// fresh one, so the server's model counters only count server work).
pub async fn assert_answers(
    client: &mut bottlenet_runtime::proto::bottle_net_client::BottleNetClient<
        tonic::transport::Channel,
    >,
    split: &str,
    image: &Image,
) {
    let phone = FakePhone::new();
    let cloud = FakeCloud::new();
    let frame = phone.encode(split, image).expect("encode");
    let reply = client
        .infer(bottlenet_runtime::proto::InferRequest {
            model: MODEL.into(),
            split: split.into(),
            frame,
            request_id: 7,
            top_k: 3,
        })
        .await
        .expect("server answers")
        .into_inner();
    let want = bottlenet_runtime::top_k(
        &expected_logits(&cloud, &phone, split, image),
        3,
        &class_names(),
    );
    assert_eq!(reply.request_id, 7);
    assert_eq!(
        reply
            .top_k
            .iter()
            .map(|c| c.index as usize)
            .collect::<Vec<_>>(),
        want.iter().map(|c| c.index).collect::<Vec<_>>()
    );
    assert_close(
        &reply.top_k.iter().map(|c| c.score).collect::<Vec<_>>(),
        &want.iter().map(|c| c.score).collect::<Vec<_>>(),
    );
}
