//! The `bottlenet` binary: a thin command-line layer over the library crates.
//! Each subcommand lives in `cmd/<name>.rs`; errors are printed as one line (`{:#}`) with a
//! non-zero exit status.

mod cmd;

use clap::{Parser, Subcommand};

/// BottleNet: split inference with a learnable bottleneck and JPEG-compressed features.
#[derive(Debug, Parser)]
#[command(name = "bottlenet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure every codec on a feature tensor: frame bytes, encode/decode µs, round-trip error.
    Codec(cmd::codec::CodecArgs),
    /// Work with wire frames.
    #[command(subcommand)]
    Frame(cmd::frame::FrameCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Codec(args) => cmd::codec::run(args),
        Command::Frame(command) => cmd::frame::run(command),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
