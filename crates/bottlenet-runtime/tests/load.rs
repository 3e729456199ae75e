//! Bounded load test: 64 concurrent clients × 50 requests each, with dynamic batching on and
//! off. Every request must be answered correctly by the server and none lost; throughput and
//! latency percentiles are printed, never asserted (run with `--nocapture` to see them).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bottlenet_runtime::proto::StatusRequest;
use bottlenet_runtime::{
    Choice, Client, ClientOptions, PhoneHalf, ServerConfig, SplitMode, Summary, top_k,
};
use common::*;
use tokio::task::JoinSet;

const CLIENTS: usize = 64;
const REQUESTS: usize = 50;
const SPLIT: &str = "rb1";

/// `batch_cost`: a fixed sleep per executed batch, standing in for the per-launch overhead of a
/// real tail on an accelerator (zero: the fake's arithmetic alone, microseconds).
async fn run(label: &str, max_batch: usize, max_delay_ms: u64, batch_cost: Duration) {
    let cloud = Arc::new(FakeCloud::slow(batch_cost));
    let config = ServerConfig {
        max_batch,
        max_delay_ms,
        ..loopback_config()
    };
    let server = start(config, cloud.clone()).await;
    let phone = Arc::new(FakePhone::new());
    let imgs = Arc::new(images(16, 20));
    let reference = FakeCloud::new();
    let expected: Arc<Vec<usize>> = Arc::new(
        imgs.iter()
            .map(|im| {
                top_k(
                    &expected_logits(&reference, &phone, SPLIT, im),
                    1,
                    &class_names(),
                )[0]
                .index
            })
            .collect(),
    );

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut options = ClientOptions::new(SplitMode::Fixed(SPLIT.into()));
        // Generous: this test checks that nothing is lost, so no request may time out into a
        // phone answer on a slow machine.
        options.timeout = Duration::from_secs(30);
        let client = Client::connect(&server.url(), phone.clone() as Arc<dyn PhoneHalf>, options)
            .await
            .expect("connect");
        assert!(client.server_up());
        clients.push(client);
    }

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (c, client) in clients.into_iter().enumerate() {
        let (imgs, expected) = (Arc::clone(&imgs), Arc::clone(&expected));
        tasks.spawn(async move {
            let mut answers = Vec::with_capacity(REQUESTS);
            for r in 0..REQUESTS {
                let i = (c * 7 + r) % imgs.len();
                let answer = client.infer(&imgs[i]).await.expect("answered");
                answers.push((answer, expected[i]));
            }
            answers
        });
    }
    let mut summary = Summary::new();
    let mut batch_sum = 0u64;
    let mut answered = 0;
    while let Some(done) = tasks.join_next().await {
        for (answer, label) in done.expect("client task") {
            assert_eq!(
                answer.served_by,
                Choice::Split(SPLIT.into()),
                "served by the server, not the phone"
            );
            assert!(!answer.fell_back);
            assert_eq!(answer.top_k[0].index, label, "correct answer");
            batch_sum += u64::from(answer.batch_size);
            summary.record(&answer, Some(label));
            answered += 1;
        }
    }
    let wall = started.elapsed();
    assert_eq!(answered, CLIENTS * REQUESTS);
    let report = summary.report();
    assert_eq!(report.accuracy, Some(1.0));

    // None lost or duplicated on the server side either.
    let status = raw_client(&server)
        .await
        .status(StatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    let served = status.models[0]
        .splits
        .iter()
        .find(|s| s.split == SPLIT)
        .expect("split")
        .served;
    assert_eq!(served, (CLIENTS * REQUESTS) as u64);
    assert_eq!(cloud.computed(), CLIENTS * REQUESTS);

    println!(
        "load [{label}: max_batch={max_batch}, max_delay={max_delay_ms} ms, batch cost {batch_cost:?}]: {} requests in {:.2} s = {:.0} req/s; \
         latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; mean batch {:.2}; {} batches; {:.0} B/request",
        answered,
        wall.as_secs_f64(),
        answered as f64 / wall.as_secs_f64(),
        report.p50_ms,
        report.p99_ms,
        report.max_ms,
        batch_sum as f64 / answered as f64,
        cloud.batches(),
        report.mean_bytes,
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_fifty_requests_each_batching_on_and_off() {
    tokio::time::timeout(Duration::from_secs(300), async {
        for cost in [Duration::ZERO, Duration::from_millis(2)] {
            run("batching on", 32, 2, cost).await;
            run("batching off", 1, 0, cost).await;
        }
    })
    .await
    .expect("load test finishes in time");
}
