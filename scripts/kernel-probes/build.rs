//! Links Debian's XNNPACK and the thread pool it runs on.
fn main() {
    println!("cargo:rustc-link-lib=XNNPACK");
    println!("cargo:rustc-link-lib=pthreadpool");
}
