//! The binary runs oneDNN's OpenMP threads with its own spin count, and glibc's malloc with its
//! own thresholds, unless the user set them (src/c_runtime_env.rs): it re-executes itself with
//! `GOMP_SPINCOUNT` and `MALLOC_*_` before anything else runs. Under CI a build without oneDNN
//! fails here (CI installs libdnnl-dev).

use std::process::Command;

/// The value of `field` in the start-up line the binary logs, run as `model info` with `env` added.
fn logged(field: &str, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bottlenet"));
    command.args(["model", "info", "--arch", "compact"]).env("RUST_LOG", "debug");
    for name in ["GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES"] {
        command.env_remove(name);
    }
    let out = command.envs(env.iter().copied()).output().expect("running bottlenet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "model info failed: {stderr}");
    let line = stderr.lines().find(|l| l.contains("kernels on flex")).unwrap_or_else(|| panic!("no start-up line in: {stderr}"));
    let value = line.split(&format!("{field}=")).nth(1).unwrap_or_else(|| panic!("no {field} in: {line}"));
    value.split_whitespace().next().unwrap_or_default().to_string()
}

fn logged_spin_count(env: &[(&str, &str)]) -> String {
    logged("gomp_spincount", env)
}

/// Whether this build re-executes (oneDNN linked). Under CI a build without it fails here.
fn reexecutes() -> bool {
    if !bottlenet_onednn::linked() {
        assert!(std::env::var_os("CI").is_none(), "oneDNN is not linked in this build: install libdnnl-dev (CI must)");
        eprintln!("oneDNN not linked: the binary does not re-execute");
    }
    bottlenet_onednn::linked()
}

#[test]
fn the_binary_sets_its_spin_count_and_keeps_the_users() {
    if !reexecutes() {
        return;
    }
    assert_eq!(logged_spin_count(&[]), "10000", "the binary did not re-execute with its spin count");
    assert_eq!(logged_spin_count(&[("GOMP_SPINCOUNT", "5")]), "5", "the user's spin count was replaced");
    assert_eq!(logged_spin_count(&[("OMP_WAIT_POLICY", "passive")]), "libgomp's", "a user's wait policy was overridden");
}

#[test]
fn the_binary_keeps_freed_memory_for_reuse_unless_told_otherwise() {
    if !reexecutes() {
        return;
    }
    let threshold = |env: &[(&str, &str)]| logged("malloc_mmap_threshold", env);
    assert_eq!(threshold(&[]), "33554432", "the binary did not re-execute with its malloc thresholds");
    assert_eq!(threshold(&[("MALLOC_MMAP_THRESHOLD_", "65536")]), "65536", "the user's threshold was replaced");
    assert_eq!(threshold(&[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")]), "glibc's", "a user's tunables were overridden");
    // The spin is set with the thresholds left to the user, and the other way round.
    assert_eq!(logged_spin_count(&[("MALLOC_TOP_PAD_", "0")]), "10000");
    assert_eq!(threshold(&[("GOMP_SPINCOUNT", "5")]), "33554432");
}
