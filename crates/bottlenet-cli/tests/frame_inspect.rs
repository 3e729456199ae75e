//! `bottlenet frame inspect` reads both frame versions; a version-2 frame needs its split's
//! shape, and one checked against another shape is refused in one line.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use assert_cmd::Command;
use bottlenet_codec::synthetic::relu_like;
use bottlenet_codec::{CodecParams, Shape, encode, encode_v2};

fn inspect(file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::cargo_bin("bottlenet").unwrap().args(["frame", "inspect"]).arg(file).args(extra).output().unwrap()
}

#[test]
fn version_1_and_version_2_frames_are_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let tensor = relu_like(Shape::new(1, 14, 14), 3);
    let (v1, v2) = (dir.path().join("v1.bin"), dir.path().join("v2.bin"));
    std::fs::write(&v1, encode(&tensor, &CodecParams::paper()).unwrap()).unwrap();
    std::fs::write(&v2, encode_v2(&tensor, &CodecParams::paper()).unwrap()).unwrap();

    let out = inspect(&v1, &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((j["version"].as_u64(), j["header_bytes"].as_u64()), (Some(1), Some(28)));

    let out = inspect(&v2, &["--json", "--shape", "1x14x14"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((j["version"].as_u64(), j["header_bytes"].as_u64(), j["shape"].as_str()), (Some(2), Some(14), Some("1x14x14")));

    for extra in [&[][..], &["--shape", "2x14x14"][..]] {
        let out = inspect(&v2, extra);
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
