//! `scripts/netem.sh` end to end: two network namespaces, the phone's up-link shaped to each of
//! the paper's presets (Table 3), the real server and client, and a row of measured latency
//! beside Algorithm 1's prediction for every preset × path; nothing is left behind afterwards,
//! not even when the run is interrupted.
//!
//! Needs root and `ip netns`; without them (the script's `--check` exits 3) the tests print why
//! and pass — unless `CI` or `BOTTLENET_NETEM_REQUIRED` is set, where a skip is a failure. Timings are
//! not asserted (they are noisy on a shared machine): `docs/netem.md` reports them.
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

use bottlenet_partition::ReselectConfig;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One emulation at a time: each runs a server and a client on the same few cores.
static SERIAL: Mutex<()> = Mutex::new(());

const PRESETS: [&str; 3] = ["3g", "4g", "wifi"];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/netem.sh")
}

fn netem(args: &[&str]) -> Command {
    let mut command = Command::new(script());
    command.arg("--bin").arg(env!("CARGO_BIN_EXE_bottlenet")).args(args);
    command
}

/// Whether this machine can run the emulation; prints why not.
fn runnable() -> bool {
    let out = Command::new(script()).arg("--check").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
            true
        }
        Some(3) => {
            for var in ["BOTTLENET_NETEM_REQUIRED", "CI"] {
                assert!(std::env::var_os(var).is_none(), "{var} is set but {}", stderr.trim());
            }
            eprintln!("SKIPPED netem test: {}", stderr.trim());
            false
        }
        _ => panic!("netem.sh --check failed ({}): {stderr}", out.status),
    }
}

/// The namespaces a run of the script with this process id created (`bnetem-PID-phone`, …).
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(out.status.success(), "ip netns list failed");
    let prefix = format!("bnetem-{pid}-");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// Whether the run's veth is still in this namespace (it is, if setup stopped half-way).
fn veth_left(pid: u32) -> bool {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    // "7: bnpPID@if6: <…>": the second field up to '@' or ':'.
    let name = format!("bnp{pid}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().nth(1).and_then(|f| f.split(['@', ':']).next()) == Some(name.as_str()))
}

/// Live processes still in the run's process group (server, filler, client), from /proc; a
/// zombie (state Z) is dead, only not yet reaped.
fn group_left(pgid: u32) -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        // /proc/PID/stat: "pid (comm) state ppid pgrp …"; comm may hold spaces, so split after ')'.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = tail.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            left.push(head.to_string() + ")");
        }
    }
    left
}

fn assert_clean(pid: u32) {
    assert_eq!(namespaces_of(pid), Vec::<String>::new(), "namespaces left behind");
    assert!(!veth_left(pid), "veth bnp{pid} left behind");
}

fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("netem.sh did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the script with `args` and `--json`; it must succeed and leave nothing behind. Its JSON
/// report and its stdout (printed).
fn run_to_json(args: &[&str]) -> (Value, String) {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("report.json");
    let child = netem(args).arg("--json").arg(&json).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    eprintln!("{stdout}");
    assert!(out.status.success(), "netem.sh {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_clean(pid);
    (serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap(), stdout)
}

#[test]
fn every_preset_and_path_has_a_measured_row_and_nothing_is_left() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !runnable() {
        return;
    }
    let (report, stdout) = run_to_json(&["--presets", &PRESETS.join(","), "--limit", "5"]);
    let rows = report["rows"].as_array().unwrap();
    let mut from_json = BTreeSet::new();
    for row in rows {
        let (preset, path) = (row["preset"].as_str().unwrap(), row["path"].as_str().unwrap());
        let p50 = row["p50_ms"].as_f64().unwrap();
        assert!(p50.is_finite() && p50 > 0.0, "{preset}/{path}: p50 {p50}");
        assert!(row["pred_ms"].as_f64().unwrap() > 0.0, "{preset}/{path}: no prediction");
        assert_eq!(row["requests"], 5, "{preset}/{path}");
        // A fallback answer came from the phone alone: the row would not measure its path.
        assert_eq!(row["fallbacks"], 0, "{preset}/{path}: {}", row["by_path"]);
        // Every packet of the up-link per image, counted at the veth; TLS is on by default.
        let wire = row["wire_bytes_per_image"].as_f64().unwrap();
        assert!(row["tls"] == true, "{preset}/{path}: TLS off");
        // Each end on a core of its own where there are two (--pin on, the default).
        let pin = row["pin"].as_str().unwrap();
        if std::thread::available_parallelism().map_or(1, usize::from) >= 2 {
            assert!(pin.starts_with("phone and filler on CPU ") && pin.contains(", server on CPU "), "{preset}/{path}: pinned {pin}");
        }
        if path != "mobile-only" {
            assert!(wire > row["sent_bytes"].as_f64().unwrap(), "{preset}/{path}: {wire} B on the wire");
        }
        from_json.insert((preset.to_string(), path.to_string(), row["chosen"] == true));
    }
    for preset in PRESETS {
        for path in ["cloud-only", "mobile-only"] {
            assert!(from_json.iter().any(|(p, q, _)| p == preset && q == path), "no {preset}/{path} row");
        }
        assert_eq!(from_json.iter().filter(|(p, _, chosen)| p == preset && *chosen).count(), 1, "{preset}: one chosen path");
    }

    // The printed table has the same rows: "preset rate path[*] …".
    let from_table: BTreeSet<_> = stdout
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() > 3 && PRESETS.contains(&cols[0]))
                .then(|| (cols[0].to_string(), cols[2].trim_end_matches('*').to_string(), cols[2].ends_with('*')))
        })
        .collect();
    assert_eq!(from_table, from_json, "table and JSON disagree");
}

/// Issue 14 item 2: TCP timestamps are 12 of the 66 header bytes of every segment the phone
/// sends; `--tcp-timestamps off` turns them off in the phone's namespace, and the bytes counted
/// at its veth per image fall by about that much (one segment per image; 172 → 159 B measured
/// with TLS, docs/netem.md). `server-off` turns them off in the server's namespace alone: a
/// connection has timestamps only when both ends offer them, so the phone's bytes fall as much.
#[test]
fn tcp_timestamps_turned_off_at_either_end_save_the_phones_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !runnable() {
        return;
    }
    let wire = |timestamps: &str| {
        let (report, _) = run_to_json(&["--presets", "3g", "--paths", "RB1", "--limit", "30", "--tcp-timestamps", timestamps]);
        let row = &report["rows"].as_array().unwrap()[0];
        assert_eq!(row["tcp_timestamps"], timestamps, "{row}");
        assert_eq!(row["fallbacks"], 0, "{row}");
        row["wire_bytes_per_image"].as_f64().unwrap()
    };
    let on = wire("on");
    for end in ["off", "server-off"] {
        let off = wire(end);
        assert!(off < on - 8.0 && off > on - 30.0, "with timestamps {on} B per image, --tcp-timestamps {end} {off} B");
    }
}

#[test]
fn sigint_mid_run_leaves_nothing_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !runnable() {
        return;
    }
    // Long enough that the signal lands while the client is measuring.
    // Started with SIGINT at its default action, as from a terminal: a test run that was itself
    // started in the background (nohup, `cmd &` in a script) inherits SIGINT ignored, and bash
    // cannot trap a signal that was ignored when it started. python3 (which the script needs
    // anyway) resets it and execs the script.
    let mut child = Command::new("python3")
        .args(["-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"])
        .arg(script())
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_bottlenet"))
        .args(["--presets", "3g", "--limit", "2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.contains(" images") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    let signal_group = |signal: &str| Command::new("sh").args(["-c", &format!("kill -{signal} -{pid}")]).status().unwrap();
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        signal_group("TERM"); // the script cleans up, and the filler lets go of the stderr pipe
        panic!("the script never started measuring:\n{}", reader.join().unwrap().join("\n"));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(namespaces_of(pid).len(), 2, "the run should be inside its namespaces now");

    // What Ctrl-C does: SIGINT to the whole foreground process group.
    assert!(signal_group("INT").success(), "kill -INT failed");
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    let log = reader.join().unwrap().join("\n");
    eprintln!("{log}");
    assert_eq!(status.code(), Some(130), "exit status after SIGINT: {status}");
    assert!(log.contains("interrupted; cleaned up"), "no cleanup message");
    assert_clean(pid);
    // The server and the filler were in the group: stopped by the cleanup, not orphaned.
    assert_eq!(group_left(pid), Vec::<String>::new(), "processes of the run still alive");
}

/// Issue 14 item 4: `--split auto` under tc. One run through five timed phases, one change of
/// conditions each — Wi-Fi's up-link; 0.6 Mbit/s (the link gets slower); the same with the server
/// loaded by twenty-four other phones (the server gets busy); 0.6 Mbit/s again (it is idle
/// again); Wi-Fi's (the link gets faster, which only the phone's up-link probes can show: its
/// bottleneck frames are too small to time) — with the phone emulating a device 16× slower than
/// this host (the paper's regime: a phone slower than its server; otherwise mobile-only wins
/// everywhere here and nothing can change).
///
/// In every phase the path that served the last image must be Algorithm 1's choice for that
/// phase (select at the phase's rate, with the server's own time per path over the phase from
/// its metrics: the conditions, not what the phone believed them to be), or cost less than the
/// phone's hysteresis more than it by Algorithm 1's own figures (a phone rightly stays on a path
/// that the best beats by less). The path must differ from phase to phase (or the test would
/// show nothing), and change exactly once per change of conditions: never in the first phase,
/// once in each other.
///
/// Why 0.6 Mbit/s and 16× (session 19) rather than 3G's 1.1 and 7×: the slow phase's winner,
/// RB1, must beat both mobile-only and cloud-only by more than the 10 % hysteresis on any host.
/// Its cost carries the server's time for a lone request, which CI's host measured at 3.3 ms
/// (4.8× the profile) where this one measured 2.1; at 3G and 7× that left RB1 6.46 against
/// mobile-only 6.32 ms on CI, a tie the phone kept. Here RB1 leads by 26–47 % (docs/netem.md).
#[test]
fn auto_follows_algorithm_1_across_two_rates_and_a_loaded_server() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !runnable() {
        return;
    }
    let (report, _) = run_to_json(&["--adapt", "wifi,0.6,0.6+load,0.6,wifi", "--phase-s", "4", "--slower-phone", "16", "--flooders", "24"]);
    assert_eq!(report["meta"]["tls"], "on", "TLS off");
    assert!(
        report["summary"]["uplink_probes"]["probes"].as_u64().unwrap_or(0) > 0,
        "the phone never probed its up-link: {}",
        report["summary"]
    );
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 5, "{report}");
    let name = |p: &Value, key: &str| p[key].as_str().unwrap_or("n/a").to_ascii_lowercase();
    let hysteresis_pct = 100.0 * ReselectConfig::DEFAULT_HYSTERESIS;
    for (i, phase) in phases.iter().enumerate() {
        assert!(
            phase["images"].as_u64().unwrap() >= 20,
            "phase {i} answered too few images to judge: {phase}"
        );
        if name(phase, "final") != name(phase, "predicted") {
            let over = phase["final_over_alg1_pct"].as_f64();
            assert!(
                over.is_some_and(|pct| pct < hysteresis_pct),
                "phase {i} ended on a path that Algorithm 1's choice beats by {over:?} %, the phone's hysteresis is {hysteresis_pct} %: {phase}"
            );
        }
        let switches = phase["switches"].as_array().unwrap().len();
        let expected = usize::from(i > 0);
        assert_eq!(
            switches, expected,
            "phase {i}: {switches} switches, expected {expected}: {phase}\n{}",
            after_each_switch(&report, phase)
        );
        if i > 0 {
            assert_ne!(
                name(phase, "final"),
                name(&phases[i - 1], "final"),
                "phases {} and {i} ended on the same path: the scenario shows nothing",
                i - 1
            );
        }
    }
    // The loaded server's own split requests are counted as the server reported them.
    assert_eq!(
        report["summary"]["server_errors"], 0,
        "{}",
        report["summary"]
    );
}

/// For a failure message: the server's time for each request (as it answered, and as its load
/// report then read) over the first images after each of `phase`'s switches, which says whether
/// the phone left a path on a stall or on a lasting load.
fn after_each_switch(report: &Value, phase: &Value) -> String {
    let answers = report["answers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut lines = Vec::new();
    for switch in phase["switches"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(first) = answers.iter().position(|a| a["image"] == switch["image"]) else { continue };
        let times: Vec<String> = answers[first..answers.len().min(first + 5)]
            .iter()
            .map(|a| format!("{} {:.2}/{:.2} ms", a["served_by"], a["server_ms"].as_f64().unwrap_or(f64::NAN), a["reported_server_ms"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        lines.push(format!("from image {}: server / reported: {}", switch["image"], times.join(", ")));
    }
    lines.join("\n")
}
