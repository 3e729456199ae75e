//! `bottlenet serve` and `bottlenet infer` as a phone that is not the server would run them:
//! TLS with a certificate made here, a bearer token from a file, the address rule. The server
//! listens on 127.0.0.1:0, runs under `timeout` so it stops by itself, and is killed when the
//! test ends.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use assert_cmd::Command;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

const BUNDLE: &str = "models/fashion-compact";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bottlenet() -> Command {
    let mut cmd = Command::cargo_bin("bottlenet").unwrap();
    cmd.current_dir(repo());
    cmd
}

/// A `bottlenet serve` child, killed on drop (a failing test included).
struct Served {
    child: Child,
    url: String,
    /// Kept open so that the server never writes to a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `extra` flags and waits for its "serving … on URL" line.
fn serve(extra: &[&str]) -> Served {
    let mut child = std::process::Command::new("timeout")
        .arg("300")
        .arg(env!("CARGO_BIN_EXE_bottlenet"))
        .args(["serve", "--bundle", BUNDLE, "--addr", "127.0.0.1:0", "--workers", "1"])
        .args(extra)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(line.starts_with("serving ") && url.starts_with("https://127.0.0.1:"), "{line:?}");
    Served { child, url, _stdout: stdout }
}

fn infer(url: &str, extra: &[&str]) -> std::process::Output {
    bottlenet().args(["infer", "--server", url, "--bundle", BUNDLE, "--limit", "3", "--json"]).args(extra).output().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn stderr_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn tls_and_token_from_files_serve_the_phone_and_refuse_a_wrong_or_missing_token() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = write(dir.path(), "cert.pem", &key.cert.pem());
    let private = write(dir.path(), "key.pem", &key.signing_key.serialize_pem());
    let token = write(dir.path(), "token", "s3cret-token\n");
    let wrong = write(dir.path(), "wrong", "guess\n");
    let server = serve(&["--tls-cert", &cert, "--tls-key", &private, "--token-file", &token]);

    let ok = infer(&server.url, &["--ca", &cert, "--token-file", &token]);
    assert!(ok.status.success(), "infer over TLS failed: {}", String::from_utf8_lossy(&ok.stderr));
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["requests"], 3, "{report}");
    assert_eq!(report["fallbacks"], 0, "{report}");
    assert_eq!(report["server_errors"], 0, "{report}");
    assert!(report["by_path"].get("mobile-only").is_none(), "the server answered: {report}");

    // A wrong or missing token: one line naming the fix, no answers from the phone alone.
    for (flags, why) in [(vec!["--ca", cert.as_str(), "--token-file", wrong.as_str()], "wrong bearer token"), (vec!["--ca", cert.as_str()], "missing bearer token")] {
        let refused = infer(&server.url, &flags);
        assert!(!refused.status.success(), "{why}: infer succeeded");
        assert!(refused.stdout.is_empty(), "{why}: no report: {}", String::from_utf8_lossy(&refused.stdout));
        let line = stderr_line(&refused);
        assert!(line.contains(why) && line.contains("--token-file"), "{line}");
    }

    // Plain gRPC to the TLS port is no way in either: the run cannot reach the server, and
    // --ca with an http:// URL is refused up front.
    let http = server.url.replacen("https://", "http://", 1);
    let line = stderr_line(&infer(&http, &["--ca", &cert, "--token-file", &token]));
    assert!(line.contains("--ca needs an https:// server URL"), "{line}");
}

#[test]
fn a_non_loopback_address_without_tls_is_refused_with_one_line() {
    let output = bottlenet().args(["serve", "--bundle", BUNDLE, "--addr", "0.0.0.0:0"]).output().unwrap();
    assert!(!output.status.success());
    let line = stderr_line(&output);
    assert!(line.contains("0.0.0.0:0 is not a loopback address") && line.contains("--tls-cert") && line.contains("--insecure"), "{line}");
    assert!(output.stdout.is_empty(), "nothing served: {}", String::from_utf8_lossy(&output.stdout));

    let help = bottlenet().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--tls-cert", "--tls-key", "--token-file", "--insecure"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    assert!(help.contains("refused without --tls-cert/--tls-key unless --insecure"), "{help}");
}
