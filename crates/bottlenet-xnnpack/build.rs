//! Links Debian's XNNPACK (`libxnnpack-dev`) and the thread pool it runs on (`libpthreadpool-dev`)
//! where both are installed for the target, and says so with `cfg(xnnpack_linked)`. Without them
//! the crate still builds: every network then refuses to build in one line that names the
//! packages ([`Error::NotLinked`]), and the engine falls back (docs/engines.md).
//!
//! `BOTTLENET_XNNPACK_LIB_DIR` points at another directory holding `libXNNPACK.so` and
//! `libpthreadpool.so` (a cross sysroot); `BOTTLENET_XNNPACK=off` builds without them.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(xnnpack_linked)");
    println!("cargo::rerun-if-env-changed=BOTTLENET_XNNPACK_LIB_DIR");
    println!("cargo::rerun-if-env-changed=BOTTLENET_XNNPACK");
    if std::env::var("BOTTLENET_XNNPACK").is_ok_and(|v| v == "off") {
        return;
    }
    let dir = match std::env::var_os("BOTTLENET_XNNPACK_LIB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // Debian's multiarch directory of the target being built (the aarch64 phone build
            // looks in /usr/lib/aarch64-linux-gnu, not in the host's).
            let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
            let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
            let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
            PathBuf::from(format!("/usr/lib/{arch}-{os}-{env}"))
        }
    };
    let libraries = [dir.join("libXNNPACK.so"), dir.join("libpthreadpool.so")];
    // Installing the packages later adds files to the directory, which reruns this script
    // (a missing path would rerun it, and rebuild every dependant, on every build).
    if dir.is_dir() {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    if libraries.iter().all(|l| l.exists()) {
        println!("cargo::rustc-link-search=native={}", dir.display());
        println!("cargo::rustc-link-lib=dylib=XNNPACK");
        println!("cargo::rustc-link-lib=dylib=pthreadpool");
        println!("cargo::rustc-cfg=xnnpack_linked");
    }
}
