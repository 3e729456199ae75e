//! Fault tolerance (paper §3.4): when the server goes away every image is still answered, by
//! the phone alone; when it comes back the client returns to splitting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bottlenet_runtime::{
    Choice, Client, ClientOptions, CloudHalf, ObservedLatency, PhoneHalf, ServerConfig, SplitMode,
    Summary, top_k,
};
use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// The answer the in-process fake gives for `choice`.
fn expected_top1(choice: &Choice, image: &bottlenet_runtime::Image) -> usize {
    let (cloud, phone) = (FakeCloud::new(), FakePhone::new());
    let logits = match choice {
        Choice::MobileOnly => phone.full(image).expect("full"),
        other => expected_logits(&cloud, &phone, other.name(), image),
    };
    top_k(&logits, 1, &class_names())[0].index
}

fn fast_probing(mode: SplitMode) -> ClientOptions {
    let mut o = ClientOptions::new(mode);
    o.probe_every = 3;
    o.probe_interval = Duration::from_millis(20);
    o.timeout = Duration::from_secs(2);
    o.connect_timeout = Duration::from_millis(200);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_run_every_image_answered_then_splitting_resumes() {
    tokio::time::timeout(LIMIT, async {
        let config = ServerConfig {
            metrics_addr: None,
            ..loopback_config()
        };
        let server = start(
            config.clone(),
            Arc::new(FakeCloud::new()) as Arc<dyn CloudHalf>,
        )
        .await;
        let addr = server.addr;
        let phone = Arc::new(FakePhone::new());
        let client = Client::connect(
            &server.url(),
            phone.clone(),
            fast_probing(SplitMode::Fixed("rb1".into())),
        )
        .await
        .expect("connect");
        let imgs = images(20, 30);
        let mut summary = Summary::new();
        let mut check = |answer: &bottlenet_runtime::Answer, image| {
            let label = expected_top1(&answer.served_by, image);
            assert_eq!(answer.top_k[0].index, label, "{answer:?}");
            summary.record(answer, Some(label));
        };

        // Phase 1: server up, the split path answers.
        for image in &imgs[..5] {
            let answer = client.infer(image).await.expect("answer");
            assert_eq!(answer.served_by, Choice::Split("rb1".into()));
            check(&answer, image);
        }

        // Phase 2: server stopped; every image still gets an answer, from the phone.
        server.stop().await.expect("clean stop");
        for image in &imgs[5..15] {
            let answer = client
                .infer(image)
                .await
                .expect("answered while the server is down");
            assert_eq!(answer.served_by, Choice::MobileOnly);
            check(&answer, image);
        }
        assert!(!client.server_up());

        // Phase 3: server back on the same address; within a bounded number of requests the
        // client's probe finds it and splitting resumes.
        let back = start(
            ServerConfig { addr, ..config },
            Arc::new(FakeCloud::new()) as Arc<dyn CloudHalf>,
        )
        .await;
        let mut resumed = false;
        for attempt in 0..500 {
            let image = &imgs[attempt % imgs.len()];
            let answer = client.infer(image).await.expect("answered");
            check(&answer, image);
            if answer.served_by == Choice::Split("rb1".into()) {
                resumed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(resumed, "client returned to splitting");
        assert!(client.server_up());
        let report = summary.report();
        assert_eq!(report.accuracy, Some(1.0));
        assert!(
            report.fallbacks >= 1,
            "the first request after the stop fell back: {report:?}"
        );
        assert!(report.by_path.get("mobile-only").copied().unwrap_or(0) >= 10);
        println!("fault run: {report:?}");
        back.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_started_while_the_server_is_down_works_and_joins_later() {
    tokio::time::timeout(LIMIT, async {
        // Reserve a free port, then release it: nothing listens there yet.
        let addr = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            l.local_addr().expect("addr")
        };
        let phone = Arc::new(FakePhone::new());
        let client = Client::connect(
            &format!("http://{addr}"),
            phone.clone(),
            fast_probing(SplitMode::CloudOnly),
        )
        .await
        .expect("connecting to a down server is not an error");
        assert!(!client.server_up());
        let image = &images(1, 31)[0];
        let answer = client.infer(image).await.expect("phone answers");
        assert_eq!(answer.served_by, Choice::MobileOnly);

        let config = ServerConfig {
            addr,
            metrics_addr: None,
            ..loopback_config()
        };
        let server = start(config, Arc::new(FakeCloud::new()) as Arc<dyn CloudHalf>).await;
        let mut resumed = false;
        for _ in 0..500 {
            let answer = client.infer(image).await.expect("answered");
            assert_eq!(
                answer.top_k[0].index,
                expected_top1(&answer.served_by, image)
            );
            if answer.served_by == Choice::CloudOnly {
                resumed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(resumed);
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_server_sends_the_phone_home_until_it_recovers() {
    tokio::time::timeout(LIMIT, async {
        let gate = Arc::new(Gate::default());
        let cloud = Arc::new(FakeCloud::gated(gate.clone()));
        let config = ServerConfig {
            max_batch: 1,
            max_delay_ms: 0,
            max_queue: 1,
            workers: 1,
            ..loopback_config()
        };
        let server = start(config, cloud.clone() as Arc<dyn CloudHalf>).await;
        let phone = Arc::new(FakePhone::new());
        let image = images(1, 32).remove(0);
        // Connected while the server is idle, so the client starts out splitting.
        let client = Client::connect(
            &server.url(),
            phone.clone(),
            fast_probing(SplitMode::Fixed("rb1".into())),
        )
        .await
        .expect("connect");
        assert!(client.server_up());
        // Two other phones fill the worker and the queue.
        let mut hogs = Vec::new();
        for _ in 0..2 {
            let other = Client::connect(
                &server.url(),
                phone.clone(),
                fast_probing(SplitMode::Fixed("rb1".into())),
            )
            .await
            .expect("connect");
            let img = image.clone();
            hogs.push(tokio::spawn(async move { other.infer(&img).await }));
            let before = cloud.batches();
            // Wait until the hog is running or queued.
            for _ in 0..400 {
                let queued = raw_client(&server)
                    .await
                    .status(bottlenet_runtime::proto::StatusRequest::default())
                    .await
                    .expect("status")
                    .into_inner()
                    .queue_depth;
                if cloud.batches() > before || queued > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        // The queue is full: RESOURCE_EXHAUSTED, so the phone answers, and the client stays
        // away while probes report a full queue.
        let answer = client.infer(&image).await.expect("answered by the phone");
        assert_eq!(answer.served_by, Choice::MobileOnly);
        assert!(answer.fell_back);
        assert!(!client.server_up());
        // A new phone's first probe sees the full queue and does not even try.
        let newcomer = Client::connect(
            &server.url(),
            phone.clone(),
            fast_probing(SplitMode::Fixed("rb1".into())),
        )
        .await
        .expect("connect");
        assert!(!newcomer.server_up());
        let answer = newcomer.infer(&image).await.expect("answered by the phone");
        assert_eq!(answer.served_by, Choice::MobileOnly);
        // Not tried, but still a fallback from rb1, with the probe's cause.
        assert!(answer.fell_back);
        assert_eq!(answer.fallback_status, Some(tonic::Code::ResourceExhausted));

        gate.open();
        for hog in hogs {
            hog.await.expect("task").expect("hog answered");
        }
        let mut resumed = false;
        for _ in 0..500 {
            let answer = client.infer(&image).await.expect("answered");
            if answer.served_by == Choice::Split("rb1".into()) {
                resumed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(resumed);
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_tries_every_candidate_and_answers_correctly() {
    tokio::time::timeout(LIMIT, async {
        let server = start(
            loopback_config(),
            Arc::new(FakeCloud::new()) as Arc<dyn CloudHalf>,
        )
        .await;
        let phone = Arc::new(FakePhone::new());
        // The policy's candidates come from the client (phone ∩ server splits + the two ends).
        let probe = Client::connect(
            &server.url(),
            phone.clone(),
            ClientOptions::new(SplitMode::MobileOnly),
        )
        .await
        .expect("connect");
        let mut candidates = probe.candidates();
        // MobileOnly mode never probes, so the server's split list is unknown: all phone splits.
        assert_eq!(candidates.len(), phone.splits().len() + 2);
        candidates.retain(|c| c != &Choice::Split("rb14".into()));
        // The declared network (4G) is the up-link until a transfer long enough to time.
        let policy = ObservedLatency::new(candidates.clone(), 0.1).with_uplink_prior(5.85);
        let mut options = fast_probing(SplitMode::Auto(Box::new(policy)));
        options.declared_uplink_mbps = Some(5.85);
        options.pacer = Some(Arc::new(
            bottlenet_runtime::UplinkPacer::new(5.85).expect("4G uplink"),
        ));
        let client = Client::connect(&server.url(), phone.clone(), options)
            .await
            .expect("connect");
        let imgs = images(12, 33);
        let mut summary = Summary::new();
        for image in &imgs {
            let answer = client.infer(image).await.expect("answer");
            let label = expected_top1(&answer.served_by, image);
            assert_eq!(answer.top_k[0].index, label);
            if answer.served_by.uses_server() {
                // 8·bytes / 5.85 Mbps of pacing is part of the measured upload.
                assert!(
                    answer.upload_ms >= 8.0 * answer.bytes as f64 / 5850.0 * 0.99,
                    "{answer:?}"
                );
            }
            summary.record(&answer, Some(label));
        }
        let report = summary.report();
        for c in &candidates {
            assert!(
                report.by_path.contains_key(c.name()),
                "{c} explored: {report:?}"
            );
        }
        assert!(!report.by_path.contains_key("rb14"));
        println!("auto run (4G pacing): {report:?}");
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}
