//! Bad input gets the right status and never stops the server: after each case the server still
//! answers correctly. Queue full and expired deadlines are refused without computing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bottlenet_codec::{CodecParams, FeatureTensor, Shape};
use bottlenet_runtime::proto::{InferImageRequest, InferRequest};
use bottlenet_runtime::{PhoneHalf, ServerConfig};
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(60);

fn request(model: &str, split: &str, frame: Vec<u8>) -> InferRequest {
    InferRequest {
        model: model.into(),
        split: split.into(),
        frame,
        request_id: 1,
        top_k: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_and_the_server_keeps_answering() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let config = ServerConfig { max_message_bytes: 4096, ..loopback_config() };
        let server = start(config, cloud.clone()).await;
        let mut client = raw_client(&server).await;
        let phone = FakePhone::new();
        let image = &images(1, 10)[0];
        let good = phone.encode("rb1", image).expect("encode");
        let mut rng = ChaCha8Rng::seed_from_u64(11);

        let junk: Vec<u8> = (0..300).map(|_| rng.random()).collect();
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x55;
        let rb4_frame = phone.encode("rb4", image).expect("encode");
        let nan_free = FeatureTensor::new(Shape::new(2, 14, 15), vec![0.5; 420]).expect("tensor");
        let wrong_width = bottlenet_codec::encode(&nan_free, &CodecParams::paper()).expect("encode");
        let cases: Vec<(&str, InferRequest, Code)> = vec![
            ("empty frame", request(MODEL, "rb1", vec![]), Code::InvalidArgument),
            ("random bytes", request(MODEL, "rb1", junk), Code::InvalidArgument),
            ("truncated frame", request(MODEL, "rb1", good[..good.len() / 2].to_vec()), Code::InvalidArgument),
            ("header only", request(MODEL, "rb1", good[..bottlenet_codec::HEADER_LEN].to_vec()), Code::InvalidArgument),
            ("corrupted payload", request(MODEL, "rb1", flipped), Code::InvalidArgument),
            ("frame of another split", request(MODEL, "rb1", rb4_frame), Code::InvalidArgument),
            ("frame of the wrong width", request(MODEL, "rb1", wrong_width), Code::InvalidArgument),
            ("unknown model", request("resnet-9000", "rb1", good.clone()), Code::NotFound),
            ("unknown split", request(MODEL, "rb99", good.clone()), Code::NotFound),
            ("reserved split name", request(MODEL, "mobile-only", good.clone()), Code::NotFound),
            ("oversize message", request(MODEL, "rb1", vec![0u8; 10_000]), Code::ResourceExhausted),
        ];
        for (what, req, code) in cases {
            let status = client.infer(req).await.expect_err(what);
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert_answers(&mut client, "rb1", image).await;
        }

        // Cloud-only with something that is not a JPEG, and an oversize image.
        let status = client
            .infer_image(InferImageRequest { model: MODEL.into(), jpeg: vec![0xFF, 0xD8, 0, 1], request_id: 2, top_k: 1 })
            .await
            .expect_err("bad jpeg");
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .infer_image(InferImageRequest { model: MODEL.into(), jpeg: vec![1; 8000], request_id: 3, top_k: 1 })
            .await
            .expect_err("oversize jpeg");
        assert_eq!(status.code(), Code::ResourceExhausted);
        let status = client
            .infer_image(InferImageRequest { model: "nope".into(), jpeg: vec![1], request_id: 4, top_k: 1 })
            .await
            .expect_err("unknown model");
        assert_eq!(status.code(), Code::NotFound);
        assert_answers(&mut client, "rb14", image).await;

        // An up-link probe's padding is read and ignored within the message limit, and refused
        // beyond it (before any handler runs), like any other oversize message.
        let padded = |bytes: usize| bottlenet_runtime::proto::StatusRequest { padding: vec![7; bytes] };
        let status = client.status(padded(3_000)).await.expect("padding within the limit").into_inner();
        assert_eq!(status.max_message_bytes, 4096);
        let refused = client.status(padded(64 * 1024)).await.expect_err("oversize padding");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert_answers(&mut client, "rb1", image).await;

        // The metrics saw them, under bounded labels.
        let text = fetch_metrics(server.metrics.expect("metrics")).await;
        assert!(text.contains(r#"bottlenet_requests_total{model="fake",split="rb1",status="INVALID_ARGUMENT"} 7"#), "{text}");
        assert!(text.contains(r#"bottlenet_requests_total{model="unknown",split="unknown",status="NOT_FOUND"} 4"#), "{text}");
        // The oversize frame, the oversize JPEG and the oversize probe padding.
        assert!(text.contains(r#"bottlenet_requests_total{model="unknown",split="unknown",status="RESOURCE_EXHAUSTED"} 3"#), "{text}");
        assert!(!text.contains("resnet-9000") && !text.contains("rb99"), "{text}");
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_the_raw_port_do_not_stop_the_server() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let server = start(loopback_config(), cloud.clone()).await;
        let mut client = raw_client(&server).await;
        let image = &images(1, 12)[0];
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        for round in 0..20 {
            let mut stream = tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect");
            let len = rng.random_range(1..20_000);
            let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half the rounds look like HTTP/2 until the frames start.
            if round % 2 == 1 {
                junk.splice(0..0, PREFACE.iter().copied());
            }
            // The server may close on us mid-write; that is its right.
            let _ = stream.write_all(&junk).await;
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
            assert_answers(&mut client, "rb4", image).await;
        }
        // Half-open connections that send nothing do not block others either.
        let idle: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..8 {
                v.push(
                    tokio::net::TcpStream::connect(server.addr)
                        .await
                        .expect("connect"),
                );
            }
            v
        };
        assert_answers(&mut client, "rb1", image).await;
        drop(idle);
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_resource_exhausted_then_recovers() {
    tokio::time::timeout(LIMIT, async {
        let gate = Arc::new(Gate::default());
        let cloud = Arc::new(FakeCloud::gated(gate.clone()));
        let config = ServerConfig {
            max_batch: 1,
            max_delay_ms: 0,
            max_queue: 2,
            workers: 1,
            ..loopback_config()
        };
        let server = start(config, cloud.clone()).await;
        let client = raw_client(&server).await;
        let phone = FakePhone::new();
        let image = images(1, 14).remove(0);
        let frame = phone.encode("rb1", &image).expect("encode");
        let send = |frame: Vec<u8>| {
            let mut c = client.clone();
            async move { c.infer(request(MODEL, "rb1", frame)).await }
        };

        let mut held = JoinSet::new();
        // The first request occupies the only worker (held at the gate)…
        held.spawn(send(frame.clone()));
        while cloud.batches() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // …two more fill the queue…
        held.spawn(send(frame.clone()));
        held.spawn(send(frame.clone()));
        let mut status_client = client.clone();
        loop {
            let s = status_client
                .status(bottlenet_runtime::proto::StatusRequest::default())
                .await
                .expect("status")
                .into_inner();
            if s.queue_depth == 2 {
                assert_eq!(s.max_queue, 2);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // …and the next ones are refused at once rather than queued.
        for _ in 0..3 {
            let refused = send(frame.clone()).await.expect_err("queue full");
            assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        }
        gate.open();
        while let Some(done) = held.join_next().await {
            done.expect("task").expect("queued requests are served");
        }
        assert_eq!(cloud.computed(), 3);
        let mut c = client.clone();
        assert_answers(&mut c, "rb1", &image).await;
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_deadline_passes_in_the_queue_is_dropped_unserved() {
    tokio::time::timeout(LIMIT, async {
        let gate = Arc::new(Gate::default());
        let cloud = Arc::new(FakeCloud::gated(gate.clone()));
        let config = ServerConfig {
            max_batch: 1,
            max_delay_ms: 0,
            workers: 1,
            ..loopback_config()
        };
        let server = start(config, cloud.clone()).await;
        let client = raw_client(&server).await;
        let phone = FakePhone::new();
        let image = images(1, 15).remove(0);
        let frame = phone.encode("rb1", &image).expect("encode");

        let mut blocker = client.clone();
        let first = tokio::spawn({
            let frame = frame.clone();
            async move { blocker.infer(request(MODEL, "rb1", frame)).await }
        });
        while cloud.batches() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut late = tonic::Request::new(request(MODEL, "rb1", frame.clone()));
        late.set_timeout(Duration::from_millis(100));
        let status = client.clone().infer(late).await.expect_err("deadline");
        // The server gives up at the deadline and answers DEADLINE_EXCEEDED; the client's own
        // tonic timer (same deadline) may fire first, which tonic reports as CANCELLED.
        let server_answered = status.code() == Code::DeadlineExceeded;
        assert!(
            server_answered
                || (status.code() == Code::Cancelled && status.message().contains("Timeout")),
            "{status:?}"
        );

        gate.open();
        first.await.expect("task").expect("first request served");
        let mut c = client.clone();
        assert_answers(&mut c, "rb1", &image).await;
        // The expired request was never computed: only the first and the last ran.
        assert_eq!(cloud.computed(), 2);
        let text = fetch_metrics(server.metrics.expect("metrics")).await;
        assert!(
            text.contains(r#"bottlenet_dropped_total{reason="cancelled"} 1"#),
            "{text}"
        );
        if server_answered {
            assert!(text.contains(r#"status="DEADLINE_EXCEEDED"} 1"#), "{text}");
        }
        assert!(!text.contains(r#"status="OK"} 3"#), "{text}");
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}

/// A frame whose header claims `shape` and `params` and whose payload is `len` bytes that no
/// JPEG decoder accepts, with a correct CRC: only the header can be checked.
fn undecodable_frame(shape: Shape, params: CodecParams, len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(bottlenet_codec::HEADER_LEN + len);
    frame.extend_from_slice(b"BN");
    frame.extend_from_slice(&[1, params.codec as u8, params.quality, params.bits]);
    for side in [shape.channels, shape.height, shape.width] {
        frame.extend_from_slice(&u16::try_from(side).expect("side").to_le_bytes());
    }
    frame.extend_from_slice(&0.0f32.to_le_bytes());
    frame.extend_from_slice(&1.0f32.to_le_bytes());
    frame.extend_from_slice(&u32::try_from(len).expect("len").to_le_bytes());
    let payload = vec![0xFFu8; len];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&frame);
    crc.update(&payload);
    frame.extend_from_slice(&crc.finalize().to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_headers_are_checked_against_the_split_before_anything_is_decoded() {
    tokio::time::timeout(LIMIT, async {
        let cloud = Arc::new(FakeCloud::new());
        let server = start(loopback_config(), cloud.clone()).await;
        let mut client = raw_client(&server).await;
        let paper = CodecParams::paper();
        let rb1 = Shape::new(2, 14, 14);
        // The header parses, the CRC holds and the size is plausible: a decode-first server
        // would spend ~0.1 s decoding the 4096×4096 claim and then answer "corrupt payload".
        let huge = undecodable_frame(Shape::new(1, 4096, 4096), paper, 200_000);
        assert!(bottlenet_codec::decode_header(&huge).is_ok());
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("4096x4096 claim", huge, "shape 1x4096x4096, the split expects 2x14x14"),
            ("another quality", undecodable_frame(rb1, CodecParams { quality: 50, ..paper }, 400), "quality 50, the split expects 20"),
            ("other bits", undecodable_frame(rb1, CodecParams { bits: 4, ..paper }, 400), "bits 4, the split expects 8"),
            ("another codec", undecodable_frame(rb1, CodecParams { codec: bottlenet_codec::CodecKind::Jpeg, ..paper }, 400), "codec jpeg, the split expects jpeg-abbrev"),
        ];
        for (what, frame, named) in cases {
            let status = client.infer(request(MODEL, "rb1", frame)).await.expect_err(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
            assert!(status.message().contains(named), "{what}: {}", status.message());
        }
        // Nothing reached the decoder or the model: no decode time was ever recorded for rb1.
        let text = fetch_metrics(server.metrics.expect("metrics")).await;
        assert!(!text.contains(r#"bottlenet_decode_seconds_count{model="fake",split="rb1"}"#), "{text}");
        assert!(text.contains(r#"bottlenet_requests_total{model="fake",split="rb1",status="INVALID_ARGUMENT"} 4"#), "{text}");
        assert_eq!(cloud.computed(), 0);
        // And the server still answers a good frame.
        assert_answers(&mut client, "rb1", &images(1, 21)[0]).await;
        server.stop().await.expect("clean stop");
    })
    .await
    .expect("test finishes in time");
}
