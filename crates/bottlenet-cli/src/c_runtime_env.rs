//! What the C libraries under the binary read from the environment before `main` runs:
//! libgomp's spin (oneDNN's OpenMP threads) and glibc malloc's thresholds. Both are read once,
//! as the libraries load, so when a setting is missing the binary sets it and executes itself
//! again (the same process and pid, the same arguments, the same file through `/proc/self/exe`
//! even if it was replaced on disk). A value the user set is left alone.
//!
//! * **libgomp's spin.** Debian's oneDNN runs on libgomp, whose threads by default spin for
//!   300 000 rounds after each parallel region. In a training step the convolutions (oneDNN)
//!   alternate with operations on rayon's pool (flex's element-wise operations, the fused
//!   BatchNorm), so on a machine with as many cores as threads the spinning OpenMP threads take
//!   the cores rayon's workers need. Measured on a 2-core machine (`bench --only train`,
//!   compact step batch 64, plain / RB1 / RB1 aware): the default 121–126 / 141 / 142–143 ms;
//!   `GOMP_SPINCOUNT=10000` 102 / 114 / 119 ms; 1000: 108–110 / 116–122 / 119–127; 0 (sleep at
//!   once): 112 / 128 / 129; 100 000: 109 / 123 / 124 (docs/engines.md). Set unless
//!   `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY` is.
//! * **glibc malloc's thresholds.** A training step allocates and frees tensors of 0.1–30 MB
//!   (the compact step at batch 64: 3.2 MB activations) hundreds of times. glibc serves them with
//!   fresh `mmap`s or trims its heap after each free, so every step faults its pages in again
//!   and the kernel zeroes them (`perf`: page faults, `clear_page_erms`, 13 % of the step's
//!   samples). [`MALLOC_SETTINGS`] keeps freed memory in the heap for reuse: allocations up to
//!   32 MiB come from the heap, the heap is trimmed only past 1 GiB free, and it grows 256 MiB at
//!   a time (address space; pages are resident once used). The step took 0.80–0.86× as long,
//!   this binary against the one before it (session 19, docs/engines.md). The cost is that a process's resident memory stays at its
//!   high-water mark. Set unless one of `MALLOC_*_` or `GLIBC_TUNABLES` is; glibc only.
//!
//! The binary re-executes only where oneDNN is linked (the x86 server and training builds), as
//! it did for the spin alone: phone builds, and the aarch64 one run under qemu-user, start
//! once.

/// The spin count this binary runs libgomp with unless told otherwise.
pub const SPIN_COUNT: &str = "10000";

/// glibc malloc's settings this binary runs with unless told otherwise (module docs).
pub const MALLOC_SETTINGS: [(&str, &str); 3] = [
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "1073741824"),
    ("MALLOC_TOP_PAD_", "268435456"),
];

/// Re-executes the binary with the settings the module docs list, where they are missing.
/// Returns only when it does not (no oneDNN in this build, every setting already made, or the
/// exec failed: the reason is returned then, for the log once it is up).
pub fn reexec_with_settings() -> Option<String> {
    if !bottlenet_onednn::linked() {
        return None;
    }
    let missing = missing_settings(|name| std::env::var_os(name).is_some());
    if missing.is_empty() {
        return None;
    }
    reexec(&missing)
}

/// The settings to add, given which environment variables are set.
fn missing_settings(is_set: impl Fn(&str) -> bool) -> Vec<(&'static str, &'static str)> {
    let mut missing = Vec::new();
    if !is_set("GOMP_SPINCOUNT") && !is_set("OMP_WAIT_POLICY") {
        missing.push(("GOMP_SPINCOUNT", SPIN_COUNT));
    }
    // Any of ours, or the two other ways to tune glibc's malloc, means the user did.
    let malloc_tuned = MALLOC_SETTINGS.iter().map(|(name, _)| *name).chain(["MALLOC_MMAP_MAX_", "GLIBC_TUNABLES"]).any(&is_set);
    if cfg!(target_env = "gnu") && !malloc_tuned {
        missing.extend(MALLOC_SETTINGS);
    }
    missing
}

#[cfg(target_os = "linux")]
fn reexec(settings: &[(&str, &str)]) -> Option<String> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "bottlenet".into());
    let error = std::process::Command::new("/proc/self/exe").arg0(arg0).args(args).envs(settings.iter().copied()).exec();
    let names: Vec<&str> = settings.iter().map(|(name, _)| *name).collect();
    Some(format!("could not re-execute with {} set ({error}); the C libraries keep their defaults", names.join(", ")))
}

#[cfg(not(target_os = "linux"))]
fn reexec(_settings: &[(&str, &str)]) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(missing: &[(&str, &str)]) -> Vec<&'static str> {
        let all = ["GOMP_SPINCOUNT", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"];
        all.into_iter().filter(|n| missing.iter().any(|(m, _)| m == n)).collect()
    }

    #[test]
    fn each_group_is_left_alone_once_the_user_set_any_of_it() {
        let malloc = if cfg!(target_env = "gnu") { vec!["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"] } else { vec![] };
        let with = |set: &[&str]| names(&missing_settings(|n| set.contains(&n)));
        let mut everything = vec!["GOMP_SPINCOUNT"];
        everything.extend(&malloc);
        assert_eq!(with(&[]), everything);
        assert_eq!(with(&["OMP_WAIT_POLICY"]), malloc);
        assert_eq!(with(&["GOMP_SPINCOUNT"]), malloc);
        assert_eq!(with(&["GLIBC_TUNABLES"]), vec!["GOMP_SPINCOUNT"]);
        assert_eq!(with(&["MALLOC_TOP_PAD_"]), vec!["GOMP_SPINCOUNT"]);
        assert!(with(&["GOMP_SPINCOUNT", "MALLOC_MMAP_MAX_"]).is_empty());
    }
}
