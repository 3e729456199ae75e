//! Generates the gRPC code from `proto/bottlenet.proto` with the pure-Rust `protox`
//! compiler (there is no `protoc` on the build machines).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bottlenet.proto");
    let fds = protox::compile(["proto/bottlenet.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
