//! How long oneDNN's OpenMP threads spin after each call before they sleep.
//!
//! Debian's oneDNN runs on libgomp, whose threads by default spin for 300 000 rounds after each
//! parallel region. In a training step the convolutions (oneDNN) alternate with operations on
//! rayon's pool (flex's element-wise operations, the fused BatchNorm), so on a machine with as
//! many cores as threads the spinning OpenMP threads take the cores rayon's workers need.
//! Measured on this project's 2-core machine (`bench --only train`, compact step batch 64,
//! plain / RB1 / RB1 aware): the default 121–126 / 141 / 142–143 ms; `GOMP_SPINCOUNT=10000`
//! 102 / 114 / 119 ms; 1000: 108–110 / 116–122 / 119–127; 0 (sleep at once): 112 / 128 / 129;
//! 100 000: 109 / 123 / 124 (docs/engines.md).
//!
//! libgomp reads its settings once, as it loads, before `main` runs; so when neither
//! `GOMP_SPINCOUNT` nor `OMP_WAIT_POLICY` is set, the binary sets [`SPIN_COUNT`] and executes
//! itself again (the same process and pid, the same arguments, the same file through
//! `/proc/self/exe` even if it was replaced on disk). A value the user set is left alone.

/// The spin count this binary runs libgomp with unless told otherwise.
pub const SPIN_COUNT: &str = "10000";

/// Re-executes the binary with [`SPIN_COUNT`] where the module docs say so. Returns only when
/// it does not (no oneDNN in this build, a setting already made, or the exec failed: the reason
/// is returned then, for the log once it is up).
pub fn reexec_with_spin_count() -> Option<String> {
    if !bottlenet_onednn::linked() || std::env::var_os("GOMP_SPINCOUNT").is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return None;
    }
    reexec()
}

#[cfg(target_os = "linux")]
fn reexec() -> Option<String> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "bottlenet".into());
    let error = std::process::Command::new("/proc/self/exe").arg0(arg0).args(args).env("GOMP_SPINCOUNT", SPIN_COUNT).exec();
    Some(format!("could not re-execute with GOMP_SPINCOUNT={SPIN_COUNT} ({error}); OpenMP keeps its default spin"))
}

#[cfg(not(target_os = "linux"))]
fn reexec() -> Option<String> {
    None
}
