//! Answers through the server equal the in-process model, for every split and cloud-only, with
//! and without the client library; health, metrics, TLS and the bearer token.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bottlenet_runtime::proto::{InferImageRequest, InferRequest, StatusRequest};
use bottlenet_runtime::{
    CLOUD_ONLY, Choice, Client, ClientOptions, ClientTls, CloudHalf, Error, PhoneHalf,
    ServerConfig, SplitMode, TlsIdentity, top_k,
};
use common::*;
use tokio::task::JoinSet;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_split_answers_like_the_in_process_model() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let config = ServerConfig {
            max_batch: 8,
            max_delay_ms: 5,
            ..loopback_config()
        };
        let server = start(config, cloud.clone()).await;
        let client = raw_client(&server).await;
        let phone = FakePhone::new();
        let imgs = images(12, 1);
        let names = class_names();

        let mut paths: Vec<&str> = SPLITS.iter().map(|(s, _)| *s).collect();
        paths.push(CLOUD_ONLY);
        for path in paths {
            // All images of a path at once, so they are batched together.
            let mut calls = JoinSet::new();
            for (i, image) in imgs.iter().enumerate() {
                let mut c = client.clone();
                let id = i as u64 + 100;
                let payload = if path == CLOUD_ONLY {
                    phone.jpeg_input(image, 90).expect("jpeg")
                } else {
                    phone.encode(path, image).expect("encode")
                };
                let path = path.to_string();
                calls.spawn(async move {
                    let reply = if path == CLOUD_ONLY {
                        c.infer_image(InferImageRequest {
                            model: MODEL.into(),
                            jpeg: payload,
                            request_id: id,
                            top_k: 10,
                        })
                        .await
                    } else {
                        c.infer(InferRequest {
                            model: MODEL.into(),
                            split: path,
                            frame: payload,
                            request_id: id,
                            top_k: 10,
                        })
                        .await
                    };
                    (i, reply.expect("answer").into_inner())
                });
            }
            let mut largest_batch = 0;
            while let Some(done) = calls.join_next().await {
                let (i, reply) = done.expect("task");
                assert_eq!(reply.request_id, i as u64 + 100);
                let want = top_k(&expected_logits(&cloud, &phone, path, &imgs[i]), 10, &names);
                let got_idx: Vec<usize> = reply.top_k.iter().map(|c| c.index as usize).collect();
                assert_eq!(
                    got_idx,
                    want.iter().map(|c| c.index).collect::<Vec<_>>(),
                    "{path} image {i}"
                );
                assert_eq!(reply.top_k[0].label, want[0].label);
                let got: Vec<f32> = reply.top_k.iter().map(|c| c.score).collect();
                assert_close(&got, &want.iter().map(|c| c.score).collect::<Vec<_>>());
                assert!(reply.load.is_some());
                largest_batch = largest_batch.max(reply.batch_size);
            }
            assert!(largest_batch >= 1);
        }

        let status = client
            .clone()
            .status(StatusRequest::default())
            .await
            .expect("status")
            .into_inner();
        assert_eq!(status.models.len(), 1);
        let served: Vec<(String, u64)> = status.models[0]
            .splits
            .iter()
            .map(|s| (s.split.clone(), s.served))
            .collect();
        assert_eq!(
            served,
            vec![
                ("rb1".into(), 12),
                ("rb4".into(), 12),
                ("rb14".into(), 12),
                (CLOUD_ONLY.into(), 12)
            ]
        );
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_matches_the_in_process_model_on_every_path() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let server = start(loopback_config(), cloud.clone()).await;
        let phone = Arc::new(FakePhone::new());
        let imgs = images(5, 2);
        let modes = [
            (SplitMode::Fixed("rb1".into()), Choice::Split("rb1".into())),
            (
                SplitMode::Fixed("rb14".into()),
                Choice::Split("rb14".into()),
            ),
            (SplitMode::CloudOnly, Choice::CloudOnly),
            (SplitMode::MobileOnly, Choice::MobileOnly),
        ];
        for (mode, choice) in modes {
            let client = Client::connect(&server.url(), phone.clone(), ClientOptions::new(mode))
                .await
                .expect("connect");
            assert!(client.server_up() || choice == Choice::MobileOnly);
            for image in &imgs {
                let answer = client.infer(image).await.expect("answer");
                assert_eq!(answer.served_by, choice);
                assert!(!answer.fell_back);
                let logits = match &choice {
                    Choice::MobileOnly => phone.full(image).expect("full"),
                    other => expected_logits(&cloud, &phone, other.name(), image),
                };
                let want = top_k(&logits, 5, &class_names());
                assert_eq!(
                    answer.top_k.iter().map(|c| c.index).collect::<Vec<_>>(),
                    want.iter().map(|c| c.index).collect::<Vec<_>>()
                );
                if choice.uses_server() {
                    assert!(answer.bytes > 0 && answer.batch_size >= 1);
                    assert!(answer.tc_ms > 0.0);
                } else {
                    assert_eq!(answer.bytes, 0);
                }
            }
        }
        // A fixed split the phone lacks is refused at connect.
        let err = Client::connect(
            &server.url(),
            phone.clone(),
            ClientOptions::new(SplitMode::Fixed("rb99".into())),
        )
        .await;
        assert!(matches!(err, Err(Error::UnknownSplit { .. })), "{err:?}");
        // A fixed split the phone has but the server does not serve is refused too.
        let mut wider = FakePhone::new();
        wider.splits.push("rb7".into());
        let err = Client::connect(
            &server.url(),
            Arc::new(wider),
            ClientOptions::new(SplitMode::Fixed("rb7".into())),
        )
        .await;
        assert!(matches!(err, Err(Error::UnknownSplit { .. })), "{err:?}");
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_and_metrics_count_requests() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let server = start(loopback_config(), cloud.clone()).await;
        let channel = tonic::transport::Endpoint::from_shared(server.url())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel);
        for service in ["", "bottlenet.v1.BottleNet"] {
            let reply = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("health")
                .into_inner();
            assert_eq!(
                reply.status,
                ServingStatus::Serving as i32,
                "service {service:?}"
            );
        }

        let mut client = raw_client(&server).await;
        let imgs = images(3, 3);
        for image in &imgs {
            assert_answers(&mut client, "rb4", image).await;
        }
        let bad = client
            .infer(InferRequest {
                model: MODEL.into(),
                split: "rb4".into(),
                frame: vec![1, 2, 3],
                request_id: 1,
                top_k: 1,
            })
            .await
            .expect_err("bad frame");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);

        let text = fetch_metrics(server.metrics.expect("metrics on")).await;
        assert!(
            text.contains(r#"bottlenet_requests_total{model="fake",split="rb4",status="OK"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"bottlenet_requests_total{model="fake",split="rb4",status="INVALID_ARGUMENT"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"bottlenet_received_bytes_total{model="fake",split="rb4"}"#),
            "{text}"
        );
        for family in [
            "bottlenet_queue_seconds",
            "bottlenet_decode_seconds",
            "bottlenet_tail_seconds",
            "bottlenet_batch_size",
        ] {
            assert!(
                text.contains(&format!("{family}_count{{model=\"fake\",split=\"rb4\"}}")),
                "{family}: {text}"
            );
        }
        assert!(text.contains("bottlenet_queue_depth 0"), "{text}");
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_bearer_token() {
    tokio::time::timeout(LIMIT, async {
        let key =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let cert_pem = key.cert.pem().into_bytes();
        let tls = TlsIdentity {
            cert_pem: cert_pem.clone(),
            key_pem: key.signing_key.serialize_pem().into_bytes(),
        };
        let cloud = Arc::new(FakeCloud::new());
        let config = ServerConfig {
            tls: Some(tls),
            token: Some("s3cret".into()),
            ..loopback_config()
        };
        let server = start(config, cloud.clone()).await;
        let url = format!("https://{}", server.addr);
        let phone = Arc::new(FakePhone::new());
        let tls = ClientTls {
            ca_pem: Some(cert_pem),
            domain: Some("localhost".into()),
        };

        let options = |token: Option<&str>| {
            let mut o = ClientOptions::new(SplitMode::Fixed("rb1".into()));
            o.tls = Some(tls.clone());
            o.token = token.map(str::to_string);
            o
        };
        let client = Client::connect(&url, phone.clone(), options(Some("s3cret")))
            .await
            .expect("connect");
        assert!(client.server_up());
        let image = &images(1, 4)[0];
        let answer = client.infer(image).await.expect("answer over TLS");
        assert_eq!(answer.served_by, Choice::Split("rb1".into()));
        let want = top_k(
            &expected_logits(&cloud, &phone, "rb1", image),
            1,
            &class_names(),
        );
        assert_eq!(answer.top_k[0].index, want[0].index);

        // A wrong or missing token is a configuration error: `connect` returns it, rather than
        // starting a client that would answer every image on the phone.
        for token in [Some("guess"), None] {
            let refused = Client::connect(&url, phone.clone(), options(token))
                .await
                .expect_err("refused credentials");
            assert!(matches!(&refused, Error::Unauthenticated(_)), "{token:?}: {refused:?}");
            let line = refused.to_string();
            assert!(line.contains("token") && !line.contains('\n'), "{line}");
        }
        // Over the raw protocol both are UNAUTHENTICATED, and never reach the model.
        let computed = cloud.computed();
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("url")
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(tls.ca_pem.clone().expect("ca")))
                    .domain_name("localhost"),
            )
            .expect("tls config")
            .connect()
            .await
            .expect("TLS connects");
        let frame = phone.encode("rb1", image).expect("encode");
        for token in [Some("Bearer guess"), None] {
            let mut req = tonic::Request::new(InferRequest {
                model: MODEL.into(),
                split: "rb1".into(),
                frame: frame.clone(),
                request_id: 1,
                top_k: 1,
            });
            if let Some(t) = token {
                req.metadata_mut().insert("authorization", t.parse().expect("ascii"));
            }
            let mut raw = bottlenet_runtime::proto::bottle_net_client::BottleNetClient::new(channel.clone());
            let status = raw.infer(req).await.expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{token:?}: {status:?}");
        }
        assert_eq!(cloud.computed(), computed);

        // Plain-text gRPC to a TLS port fails.
        let plain = tonic::transport::Endpoint::from_shared(server.url())
            .expect("url")
            .connect()
            .await;
        if let Ok(channel) = plain {
            let mut c = bottlenet_runtime::proto::bottle_net_client::BottleNetClient::new(channel);
            assert!(c.status(StatusRequest::default()).await.is_err());
        }
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_and_queued_work() {
    tokio::time::timeout(LIMIT, async {
        // A slow model: requests are in flight when shutdown begins, and must still be answered.
        let cloud = Arc::new(FakeCloud::slow(Duration::from_millis(150)));
        let config = ServerConfig {
            max_batch: 1,
            workers: 1,
            ..loopback_config()
        };
        let server = start(config, cloud.clone() as Arc<dyn CloudHalf>).await;
        let client = raw_client(&server).await;
        let phone = FakePhone::new();
        let imgs = images(3, 5);
        let mut calls = JoinSet::new();
        for image in &imgs {
            let mut c = client.clone();
            let frame = phone.encode("rb1", image).expect("encode");
            calls.spawn(async move {
                c.infer(InferRequest {
                    model: MODEL.into(),
                    split: "rb1".into(),
                    frame,
                    request_id: 1,
                    top_k: 1,
                })
                .await
            });
        }
        // Wait until every request has reached the server (the first batch started, the rest
        // queued), then shut down. A request still on its way when shutdown begins is refused
        // by HTTP/2's GOAWAY, not in flight: waiting only for the first batch raced with that.
        let mut status_client = client.clone();
        loop {
            let waiting = status_client.status(StatusRequest::default()).await.expect("status").into_inner().queue_depth as usize;
            if cloud.batches() > 0 && cloud.batches() + waiting >= imgs.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stopping = tokio::spawn(server.stop());
        let mut answered = 0;
        while let Some(done) = calls.join_next().await {
            done.expect("task")
                .expect("in-flight request answered during shutdown");
            answered += 1;
        }
        assert_eq!(answered, 3);
        stopping.await.expect("task").expect("clean stop");
        assert_eq!(cloud.computed(), 3);
    })
    .await
    .expect("test finishes in time");
}
