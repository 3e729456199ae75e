//! The phone build cross-compiled for 64-bit ARM (DESIGN §4: like the paper's Jetson TX2), run
//! under `qemu-aarch64` against the x86 server build on loopback: 50 test images of the shipped
//! bundle answered over its default split, read from the repository's IDX files (the phone build
//! has no embedded dataset). The frames the ARM phone sent are compared with those the x86 phone
//! build sent for the same images: they must match byte for byte (eq. 1's side information is
//! snapped onto a coarse grid, so the head's few ULP of cross-ISA difference do not reach the
//! wire); every frame from either ISA must decode to the same bits on both; both runs must get
//! the same answers. The builds must hold their halves only: no training crate, no
//! embedded dataset, the phone without `serve`, the server without `infer`.
//!
//! Cargo cannot build another target from inside a test (the build directory is locked), so
//! `.ci/run` builds the three binaries before the test command (README "Phone and server
//! builds"; there the two x86 builds also carry `wgpu`, so that they share the test build's
//! compiled dependencies). Where they are looked for, each overridable by an environment variable:
//! * `BOTTLENET_PHONE_AARCH64`: `<target>/aarch64-unknown-linux-gnu/release/bottlenet`
//! * `BOTTLENET_PHONE_X86`: `<target>/split/bottlenet-phone`
//! * `BOTTLENET_SERVER_X86`: `<target>/split/bottlenet-server`
//! * `QEMU_AARCH64`: `qemu-aarch64` on `PATH`, with the sysroot `/usr/aarch64-linux-gnu`.
//!
//! A missing binary or qemu fails the test when `CI` is set; otherwise it says why and passes
//! (the x86 builds then fall back to the default `bottlenet`, whose `infer` and `serve` are the
//! same code).
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

mod common;

use common::Served;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const IMAGES: usize = 50;
const SYSROOT: &str = "/usr/aarch64-linux-gnu";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The default (full) binary cargo built for this test, and the target directory it lies in.
fn full_binary() -> (PathBuf, PathBuf) {
    let bin = assert_cmd::cargo::cargo_bin("bottlenet");
    let target = bin.parent().and_then(Path::parent).unwrap().to_path_buf();
    (bin, target)
}

/// `var`'s path if set, else `default`; `None` (after saying why) when it is not a file.
fn locate(var: &str, default: PathBuf, what: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map_or(default, PathBuf::from);
    if path.is_file() {
        return Some(path);
    }
    let why = format!("{what} not found at {} (set {var}, or run the builds in .ci/run)", path.display());
    assert!(!in_ci(), "{why}");
    eprintln!("note: {why}");
    None
}

fn qemu() -> Option<PathBuf> {
    let found = std::env::var_os("QEMU_AARCH64").map(PathBuf::from).or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("qemu-aarch64")).find(|p| p.is_file())
    });
    let why = match &found {
        None => "qemu-aarch64 not found (apt-get install qemu-user, or set QEMU_AARCH64)".to_string(),
        Some(_) if !Path::new(SYSROOT).join("lib").is_dir() => format!("{SYSROOT}/lib missing (apt-get install libc6-dev-arm64-cross)"),
        Some(path) => return Some(path.clone()),
    };
    assert!(!in_ci(), "{why}");
    eprintln!("note: {why}");
    None
}

/// How to start one binary: directly, or the ARM one through qemu with the ARM sysroot.
#[derive(Clone, Debug)]
struct Runner {
    program: PathBuf,
    prefix: Vec<String>,
}

impl Runner {
    fn native(bin: PathBuf) -> Self {
        Self { program: bin, prefix: Vec::new() }
    }

    fn qemu(qemu: PathBuf, bin: &Path) -> Self {
        Self { program: qemu, prefix: vec!["-L".into(), SYSROOT.into(), bin.display().to_string()] }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.prefix).current_dir(repo());
        command
    }

    /// Runs to the end; stdout, failing the test with stderr unless it exits 0.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(output.status.success(), "{self:?} {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }
}

/// `server`'s `serve BUNDLE` on 127.0.0.1, port chosen by the OS.
fn serve(server: &Runner, bundle: &str) -> Served {
    let mut command = server.command();
    command.args(["serve", "--bundle", bundle, "--addr", "127.0.0.1:0"]);
    Served::spawn(command)
}

/// The subcommands `--help` lists.
fn subcommands(runner: &Runner) -> Vec<String> {
    let help = runner.ok(&["--help"]);
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
        } else if in_commands && line.starts_with("  ") {
            names.extend(line.split_whitespace().next().map(str::to_string));
        } else if in_commands {
            break;
        }
    }
    names
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `infer` of the first `IMAGES` test images, every frame saved to `frames`: the JSON summary.
fn infer(phone: &Runner, url: &str, frames: &Path) -> Value {
    let frames = frames.display().to_string();
    let limit = IMAGES.to_string();
    let out = phone.ok(&["infer", "--server", url, "--bundle", "models/fashion-compact", "--data", "data/fashion-mnist-subset", "--limit", &limit, "--json", "--save-frames", &frames]);
    serde_json::from_str(out.trim()).unwrap()
}

/// File name → bytes of every file in `dir`, sorted by name.
fn frames(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn aarch64_phone_against_x86_server_sends_what_x86_sends() {
    let (full, target) = full_binary();
    let Some(qemu) = qemu() else { return };
    let Some(arm) = locate("BOTTLENET_PHONE_AARCH64", target.join("aarch64-unknown-linux-gnu/release/bottlenet"), "the aarch64 phone build") else { return };
    let x86_phone = locate("BOTTLENET_PHONE_X86", target.join("split/bottlenet-phone"), "the x86 phone build").unwrap_or_else(|| full.clone());
    let x86_server = locate("BOTTLENET_SERVER_X86", target.join("split/bottlenet-server"), "the x86 server build").unwrap_or_else(|| full.clone());
    let arm_phone = Runner::qemu(qemu, &arm);
    let (x86_phone, x86_server) = (Runner::native(x86_phone), Runner::native(x86_server));

    // Each build holds its half: the phone's commands, the server's.
    let phone_commands = subcommands(&arm_phone);
    for name in ["infer", "profile", "model", "frame"] {
        assert!(phone_commands.iter().any(|c| c == name), "the aarch64 phone build lacks `{name}`: {phone_commands:?}");
    }
    for name in ["serve", "train", "search", "eval", "demo", "bench"] {
        assert!(!phone_commands.iter().any(|c| c == name), "the aarch64 phone build has `{name}`: {phone_commands:?}");
    }
    if x86_server.program != full {
        let server_commands = subcommands(&x86_server);
        assert!(server_commands.iter().any(|c| c == "serve"), "the server build lacks `serve`: {server_commands:?}");
        for name in ["infer", "train", "search", "eval", "demo"] {
            assert!(!server_commands.iter().any(|c| c == name), "the server build has `{name}`: {server_commands:?}");
        }
    }
    // No training code and no embedded dataset linked in: the full binary shows what they leave
    // behind (the crate's symbol names, the subset's gzip bytes), so the search is not vacuous.
    let subset = std::fs::read(repo().join("data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz")).unwrap();
    let (train_mark, data_mark) = (b"bottlenet_train".as_slice(), &subset[..64]);
    let full_bytes = std::fs::read(&full).unwrap();
    assert!(contains(&full_bytes, train_mark) && contains(&full_bytes, data_mark), "the full binary should hold the training crate and the embedded subset");
    let mut builds = vec![("aarch64 phone", arm.clone())];
    builds.extend([("x86 phone", &x86_phone), ("x86 server", &x86_server)].into_iter().filter(|(_, r)| r.program != full).map(|(n, r)| (n, r.program.clone())));
    for (name, path) in &builds {
        let bytes = std::fs::read(path).unwrap();
        assert!(!contains(&bytes, train_mark), "the {name} build links the training crate ({})", path.display());
        assert!(!contains(&bytes, data_mark), "the {name} build embeds the Fashion-MNIST subset ({})", path.display());
    }

    // The same 50 images through the ARM phone and the x86 phone, one x86 server.
    let served = serve(&x86_server, "models/fashion-compact");
    let tmp = tempfile::tempdir().unwrap();
    let (arm_dir, x86_dir) = (tmp.path().join("aarch64"), tmp.path().join("x86_64"));
    let arm_report = infer(&arm_phone, &served.url, &arm_dir);
    let x86_report = infer(&x86_phone, &served.url, &x86_dir);
    drop(served);

    for (isa, report) in [("aarch64", &arm_report), ("x86_64", &x86_report)] {
        assert_eq!(report["requests"], IMAGES, "{isa}: {report}");
        assert_eq!(report["fallbacks"], 0, "{isa}: the server did not answer every image: {report}");
        assert_eq!(report["by_path"]["RB1"], IMAGES, "{isa}: not every image went over the bundle's split RB1: {report}");
        assert!(report["accuracy"].as_f64().unwrap() > 0.7, "{isa}: {report}");
    }
    let (arm_frames, x86_frames) = (frames(&arm_dir), frames(&x86_dir));
    assert_eq!(arm_frames.len(), IMAGES);
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&arm_frames), names(&x86_frames));
    let sent: usize = arm_frames.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(arm_report["total_bytes"], sent, "the saved frames are not what the phone reported sending");
    assert_eq!(arm_report["total_bytes"], x86_report["total_bytes"]);
    // The codec is bit-exact on both ISAs, the head's f32 arithmetic is not (tract's and burn's
    // kernels differ: AVX2/AVX-512 vs NEON), so eq. 1's extremes differ by a few ULP; the encoder
    // widens them onto a grid of 8 significant bits (`quantize::snap_range`), so the frames —
    // header, side information, JPEG payload, checksum — must match byte for byte.
    for ((name, arm), (_, x86)) in arm_frames.iter().zip(&x86_frames) {
        // Version-2 frames: shape and codec come from the split's manifest (RB1, c'=1, s=2, q20).
        let spec = bottlenet_codec::FrameSpec { shape: bottlenet_codec::Shape::new(1, 14, 14), params: bottlenet_codec::CodecParams::paper() };
        let (a, b) = (bottlenet_codec::decode_header_with(arm, &spec).unwrap(), bottlenet_codec::decode_header_with(x86, &spec).unwrap());
        assert_eq!(a.shape, bottlenet_codec::Shape::new(1, 14, 14), "{name}");
        assert_eq!((a.min.to_bits(), a.max.to_bits()), (b.min.to_bits(), b.max.to_bits()), "{name}: eq. 1's min/max are {}/{} on aarch64, {}/{} on x86", a.min, a.max, b.min, b.max);
        assert_eq!(arm[arm.len() - a.payload_len..], x86[x86.len() - b.payload_len..], "{name}: the JPEG payloads differ between aarch64 and x86");
        assert_eq!(arm, x86, "{name}: the frames differ between aarch64 and x86");
    }
    // Either ISA decodes a frame to the same bits, whichever ISA made it: `frame inspect`'s
    // CRC-32 of the decoded features, on aarch64 (qemu) and on x86, for every frame of both.
    for dir in [&arm_dir, &x86_dir] {
        for (name, _) in frames(dir) {
            let file = dir.join(&name).display().to_string();
            let decoded = |runner: &Runner| -> Value { serde_json::from_str(runner.ok(&["frame", "inspect", "--json", "--shape", "1x14x14", &file]).trim()).unwrap() };
            let (on_arm, on_x86) = (decoded(&arm_phone), decoded(&x86_phone));
            assert_eq!(on_arm["features_crc32"], on_x86["features_crc32"], "{file}: decoded differently on aarch64 and x86");
            assert_eq!(on_arm, on_x86, "{file}");
        }
    }
    // Same payloads, one server: the same answers.
    assert_eq!(arm_report["accuracy"], x86_report["accuracy"]);
    eprintln!("{IMAGES} frames ({sent} B) byte-identical from aarch64 (qemu) and x86_64; every frame decoded to the same bits on both; top-1 {}", arm_report["accuracy"]);
}
