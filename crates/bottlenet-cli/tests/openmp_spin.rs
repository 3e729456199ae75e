//! The binary runs oneDNN's OpenMP threads with its own spin count unless the user set one
//! (src/openmp_spin.rs): it re-executes itself with `GOMP_SPINCOUNT` before anything else runs.
//! Under CI a build without oneDNN fails here (CI installs libdnnl-dev).

use std::process::Command;

/// The `gomp_spincount` the binary logs at start-up, run as `model info` with `env` added.
fn logged_spin_count(env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bottlenet"))
        .args(["model", "info", "--arch", "compact"])
        .env("RUST_LOG", "debug")
        .env_remove("GOMP_SPINCOUNT")
        .env_remove("OMP_WAIT_POLICY")
        .envs(env.iter().copied())
        .output()
        .expect("running bottlenet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "model info failed: {stderr}");
    let line = stderr.lines().find(|l| l.contains("kernels on flex")).unwrap_or_else(|| panic!("no start-up line in: {stderr}"));
    let value = line.split("gomp_spincount=").nth(1).unwrap_or_else(|| panic!("no gomp_spincount in: {line}"));
    value.split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn the_binary_sets_its_spin_count_and_keeps_the_users() {
    if !bottlenet_onednn::linked() {
        assert!(std::env::var_os("CI").is_none(), "oneDNN is not linked in this build: install libdnnl-dev (CI must)");
        eprintln!("oneDNN not linked: no OpenMP to tune");
        return;
    }
    assert_eq!(logged_spin_count(&[]), "10000", "the binary did not re-execute with its spin count");
    assert_eq!(logged_spin_count(&[("GOMP_SPINCOUNT", "5")]), "5", "the user's spin count was replaced");
    assert_eq!(logged_spin_count(&[("OMP_WAIT_POLICY", "passive")]), "libgomp's", "a user's wait policy was overridden");
}
