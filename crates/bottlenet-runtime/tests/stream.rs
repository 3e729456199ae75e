//! `InferStream`: one stream, many images. Every message gets the checks a unary request gets
//! (frame header against the split, size, deadline; the token at open) and a bad one is
//! answered with its own error while the stream and the server go on. The client library uses
//! the stream by default and still talks to a server through unary calls when asked.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bottlenet_codec::{CodecParams, FeatureTensor, Shape};
use bottlenet_runtime::proto::{StreamReply, StreamRequest};
use bottlenet_runtime::{Choice, Client, ClientOptions, CloudHalf, PhoneHalf, ServerConfig, SplitMode, Transport, top_k};
use common::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Code, Request};

const LIMIT: Duration = Duration::from_secs(60);

/// A raw stream: the sender of its messages and the reply stream.
async fn open(
    server: &Running,
    headers: &[(&'static str, &str)],
) -> Result<(mpsc::UnboundedSender<StreamRequest>, tonic::Streaming<StreamReply>), tonic::Status> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut request = Request::new(UnboundedReceiverStream::new(rx));
    for (name, value) in headers {
        request.metadata_mut().insert(*name, value.parse().expect("ascii"));
    }
    let replies = raw_client(server).await.infer_stream(request).await?.into_inner();
    Ok((tx, replies))
}

fn message(request_id: u64, split: &str, payload: Vec<u8>) -> StreamRequest {
    StreamRequest { request_id, split: split.into(), payload }
}

async fn next(replies: &mut tonic::Streaming<StreamReply>) -> StreamReply {
    replies.message().await.expect("stream alive").expect("a reply")
}

/// A version-2 frame of the fake phone's `split` head (what the real phone sends).
fn frame_v2(split: &str, image: &bottlenet_runtime::Image) -> Vec<u8> {
    bottlenet_codec::encode_v2(&head(split, image).expect("head"), &CodecParams::paper()).expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_their_own_error_and_the_stream_goes_on() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let config = ServerConfig { max_message_bytes: 4096, ..loopback_config() };
        let server = start(config, cloud.clone()).await;
        let (tx, mut replies) = open(&server, &[("bottlenet-model", MODEL), ("bottlenet-top-k", "3")]).await.expect("open");
        let phone = FakePhone::new();
        let image = &images(1, 40)[0];
        let want = |split: &str| top_k(&expected_logits(&cloud, &phone, split, image), 3, &class_names());
        let good = frame_v2("rb1", image);
        let wrong_width = bottlenet_codec::encode_v2(&FeatureTensor::new(Shape::new(2, 14, 15), vec![0.5; 420]).expect("tensor"), &CodecParams::paper())
            .expect("encode");
        let cases: Vec<(&str, StreamRequest, Code)> = vec![
            ("first message without a split", message(1, "", good.clone()), Code::InvalidArgument),
            ("empty frame", message(2, "rb1", vec![]), Code::InvalidArgument),
            ("truncated frame", message(3, "rb1", good[..good.len() / 2].to_vec()), Code::InvalidArgument),
            ("v2 frame of another shape", message(4, "rb1", wrong_width), Code::InvalidArgument),
            ("v2 frame of another split", message(5, "rb1", frame_v2("rb4", image)), Code::InvalidArgument),
            ("unknown split", message(6, "rb99", good.clone()), Code::NotFound),
            ("oversize payload", message(7, "rb1", vec![0u8; 4097]), Code::ResourceExhausted),
        ];
        for (what, bad, code) in cases {
            let id = bad.request_id;
            tx.send(bad).expect("send");
            let reply = next(&mut replies).await;
            assert_eq!(reply.request_id, id, "{what}");
            assert_eq!(Code::from(reply.error_code as i32), code, "{what}: {}", reply.error_message);
            assert!(reply.reply.is_none(), "{what}");
            // The same stream still serves a good frame; the split is named only when it changes.
            let split = if id == 1 || id == 6 { "rb1" } else { "" };
            tx.send(message(100 + id, split, good.clone())).expect("send");
            let ok = next(&mut replies).await;
            assert_eq!((ok.request_id, ok.error_code), (100 + id, 0), "after {what}: {}", ok.error_message);
            let got: Vec<usize> = ok.reply.expect("served").top_k.iter().map(|c| c.index as usize).collect();
            assert_eq!(got, want("rb1").iter().map(|c| c.index).collect::<Vec<_>>(), "after {what}");
        }
        // A version-1 frame and the cloud-only photo travel on the same stream.
        tx.send(message(200, "rb4", phone.encode("rb4", image).expect("v1 frame"))).expect("send");
        assert_eq!(next(&mut replies).await.error_code, 0);
        tx.send(message(201, "cloud-only", phone.jpeg_input(image, 90).expect("jpeg"))).expect("send");
        let photo = next(&mut replies).await;
        assert_eq!(photo.error_code, 0, "{}", photo.error_message);
        assert_eq!(photo.reply.expect("served").top_k[0].index as usize, want("cloud-only")[0].index);

        // Closing our side ends the reply stream once everything is answered.
        drop(tx);
        assert!(replies.message().await.expect("clean end").is_none());
        let text = fetch_metrics(server.metrics.expect("metrics")).await;
        assert!(text.contains(r#"bottlenet_requests_total{model="fake",split="rb1",status="INVALID_ARGUMENT"} 4"#), "{text}");
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_refused_at_open_for_its_model_or_token_and_messages_keep_deadlines() {
    tokio::time::timeout(LIMIT, async {
        let gate = Arc::new(Gate::default());
        let cloud = Arc::new(FakeCloud::gated(gate.clone()));
        let config = ServerConfig { token: Some("s3cret".into()), max_batch: 1, workers: 1, ..loopback_config() };
        let server = start(config, cloud.clone() as Arc<dyn CloudHalf>).await;
        let status = open(&server, &[("bottlenet-model", MODEL)]).await.expect_err("no token");
        assert_eq!(status.code(), Code::Unauthenticated);
        let auth = ("authorization", "Bearer s3cret");
        let status = open(&server, &[auth, ("bottlenet-model", "nope")]).await.expect_err("unknown model");
        assert_eq!(status.code(), Code::NotFound);
        let status = open(&server, &[auth]).await.expect_err("no model");
        assert_eq!(status.code(), Code::InvalidArgument);

        // Each message's deadline runs from its own arrival: with the worker held, both the
        // running and the queued message pass their 50 ms and are answered DEADLINE_EXCEEDED;
        // the queued one is never computed.
        let (tx, mut replies) = open(&server, &[auth, ("bottlenet-model", MODEL), ("bottlenet-timeout-ms", "50")]).await.expect("open");
        let image = &images(1, 41)[0];
        tx.send(message(1, "rb1", frame_v2("rb1", image))).expect("send");
        while cloud.batches() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tx.send(message(2, "", frame_v2("rb1", image))).expect("send");
        let mut late: Vec<(u64, Code)> = Vec::new();
        for _ in 0..2 {
            let r = next(&mut replies).await;
            late.push((r.request_id, Code::from(r.error_code as i32)));
        }
        late.sort_by_key(|(id, _)| *id);
        assert_eq!(late, vec![(1, Code::DeadlineExceeded), (2, Code::DeadlineExceeded)]);
        gate.open();
        tx.send(message(3, "", frame_v2("rb1", image))).expect("send");
        let third = next(&mut replies).await;
        assert_eq!((third.request_id, third.error_code), (3, 0), "{}", third.error_message);
        assert_eq!(cloud.computed(), 2, "the expired queued message was never computed");
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_answers_alike_over_the_stream_and_over_unary_calls() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let server = start(loopback_config(), cloud.clone() as Arc<dyn CloudHalf>).await;
        let phone = Arc::new(FakePhone::new());
        let imgs = images(8, 42);
        for transport in [Transport::Stream, Transport::Unary] {
            for mode in ["rb1", "rb4", "cloud-only"] {
                let split_mode = if mode == "cloud-only" { SplitMode::CloudOnly } else { SplitMode::Fixed(mode.into()) };
                let mut options = ClientOptions::new(split_mode);
                options.transport = transport;
                options.jpeg_quality = 90;
                let client = Client::connect(&server.url(), phone.clone(), options).await.expect("connect");
                for image in &imgs {
                    let answer = client.infer(image).await.expect("answer");
                    assert_eq!(answer.served_by, Choice::from_name(mode), "{transport:?}");
                    assert!(!answer.fell_back);
                    let want = top_k(&expected_logits(&cloud, &phone, mode, image), 1, &class_names());
                    assert_eq!(answer.top_k[0].index, want[0].index, "{transport:?} {mode}");
                }
            }
        }
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

/// Algorithm 1's candidates come from the results file; at start they are checked against the
/// phone's bundle and the server's status, so a split either lacks is never chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_never_picks_a_split_the_server_lacks() {
    use bottlenet_partition::{CandidateCosts, CandidateKind, NetworkPreset, ReselectConfig, Reselector, Target};
    tokio::time::timeout(LIMIT, async {
        let server = start(loopback_config(), Arc::new(FakeCloud::new()) as Arc<dyn CloudHalf>).await;
        let cost = |name: &str, kind, tm_ms, bytes| CandidateCosts { name: name.into(), kind, tm_ms, tc_ms: 1.0, bytes, accuracy: 90.0 };
        let costs = vec![
            // Cheapest by far, but neither end has it.
            cost("rb99", CandidateKind::Split { index: 99 }, 0.1, 10.0),
            cost("rb4", CandidateKind::Split { index: 4 }, 1.0, 100.0),
            cost(bottlenet_runtime::CLOUD_ONLY, CandidateKind::CloudOnly, 0.5, 30_000.0),
            CandidateCosts { tc_ms: 0.0, bytes: 0.0, ..cost(bottlenet_runtime::MOBILE_ONLY, CandidateKind::MobileOnly, 50.0, 0.0) },
        ];
        let config = ReselectConfig::new(Target::Latency, 1.3, 90.0, 2.0);
        let reselector = Reselector::new(costs, NetworkPreset::ThreeG.network(), config).expect("reselector");
        assert_eq!(reselector.current(), "rb99");
        let policy = bottlenet_runtime::Algorithm1::new(reselector);
        let client = Client::connect(&server.url(), Arc::new(FakePhone::new()), ClientOptions::new(SplitMode::Auto(Box::new(policy))))
            .await
            .expect("connect");
        for image in &images(5, 43) {
            let answer = client.infer(image).await.expect("answer");
            assert_eq!(answer.served_by, Choice::Split("rb4".into()), "{answer:?}");
        }
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}
