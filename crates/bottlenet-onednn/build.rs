//! Finds Debian's oneDNN (`libdnnl-dev`) and links it.
//!
//! * `BOTTLENET_ONEDNN=off` builds without oneDNN (every constructor then
//!   returns `Error::NotLinked`).
//! * `BOTTLENET_ONEDNN_LIB_DIR=/some/dir` looks for `libdnnl.so` there
//!   instead of the multiarch directory.
//! * Otherwise `/usr/lib/{arch}-{os}-{env}` (e.g. `/usr/lib/x86_64-linux-gnu`).
//!
//! When `libdnnl.so` is found the crate is compiled with `cfg(onednn_linked)`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(onednn_linked)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=BOTTLENET_ONEDNN");
    println!("cargo::rerun-if-env-changed=BOTTLENET_ONEDNN_LIB_DIR");

    if env::var("BOTTLENET_ONEDNN").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        println!("cargo::warning=bottlenet-onednn: BOTTLENET_ONEDNN=off, building without oneDNN");
        return;
    }

    let dir = match env::var_os("BOTTLENET_ONEDNN_LIB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
            let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
            let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
            PathBuf::from(format!("/usr/lib/{arch}-{os}-{target_env}"))
        }
    };

    if dir.is_dir() {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    if dir.join("libdnnl.so").exists() {
        println!("cargo::rustc-link-search=native={}", dir.display());
        println!("cargo::rustc-link-lib=dylib=dnnl");
        // oneDNN's thread runtime (Debian builds it on OpenMP); the network sets its thread
        // count per run (`omp_set_num_threads`), which libdnnl.so does not re-export.
        println!("cargo::rustc-link-lib=dylib=gomp");
        println!("cargo::rustc-cfg=onednn_linked");
    } else {
        println!(
            "cargo::warning=bottlenet-onednn: libdnnl.so not found in {}; building without oneDNN (install the Debian package libdnnl-dev)",
            dir.display()
        );
    }
}
