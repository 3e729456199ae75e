//! A server that fails on its own (INTERNAL) is visible: counted in its metrics, and counted
//! in the phone's summary apart from ordinary fallbacks, although the phone still answers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bottlenet_runtime::proto::InferRequest;
use bottlenet_runtime::{Choice, Client, ClientOptions, PhoneHalf, SplitMode, Summary};
use common::*;
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_are_counted_by_the_server_and_the_phone() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::failing());
        let server = start(loopback_config(), cloud.clone()).await;
        let phone = Arc::new(FakePhone::new());
        let image = &images(1, 31)[0];

        let mut raw = raw_client(&server).await;
        let frame = phone.encode("rb4", image).expect("encode");
        let status = raw
            .infer(InferRequest { model: MODEL.into(), split: "rb4".into(), frame, request_id: 1, top_k: 1 })
            .await
            .expect_err("the model fails");
        assert_eq!(status.code(), Code::Internal, "{status:?}");

        let client = Client::connect(&server.url(), phone.clone(), ClientOptions::new(SplitMode::Fixed("rb4".into())))
            .await
            .expect("connect");
        let answer = client.infer(image).await.expect("the phone answers");
        assert!(answer.fell_back);
        assert_eq!(answer.served_by, Choice::MobileOnly);
        assert_eq!(answer.fallback_status, Some(Code::Internal));
        let mut summary = Summary::new();
        summary.record(&answer, None);
        let report = summary.report();
        assert_eq!((report.fallbacks, report.server_errors), (1, 1));
        assert_eq!(report.fallback_causes.get("INTERNAL"), Some(&1));

        let text = fetch_metrics(server.metrics.expect("metrics")).await;
        assert!(text.contains(r#"bottlenet_internal_errors_total{model="fake",split="rb4"} 2"#), "{text}");
        assert!(text.contains(r#"bottlenet_requests_total{model="fake",split="rb4",status="INTERNAL"} 2"#), "{text}");
        assert_eq!(cloud.batches(), 2);
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_no_server_error() {
    tokio::time::timeout(LIMIT, async {
        // Bind and drop: nothing listens on this port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let phone = Arc::new(FakePhone::new());
        let mut options = ClientOptions::new(SplitMode::Fixed("rb1".into()));
        options.connect_timeout = Duration::from_millis(200);
        let client = Client::connect(&format!("http://127.0.0.1:{port}"), phone.clone() as Arc<dyn PhoneHalf>, options)
            .await
            .expect("an unreachable server is not an error");
        let answer = client.infer(&images(1, 32)[0]).await.expect("the phone answers");
        assert_eq!(answer.served_by, Choice::MobileOnly);
        // Regression (issue #14): a wrong URL at connect made every answer mobile-only with
        // fell_back=false; it is a fallback, with its cause.
        assert!(answer.fell_back, "{answer:?}");
        assert_eq!(answer.fallback_status, Some(tonic::Code::Unavailable));
        let mut summary = Summary::new();
        summary.record(&answer, None);
        let report = summary.report();
        assert_eq!(report.server_errors, 0);
        assert_eq!((report.fallbacks, report.fallback_causes.get("UNAVAILABLE").copied()), (1, Some(1)));
    })
    .await
    .expect("test finishes in time");
}
