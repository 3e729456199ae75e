//! The `bottlenet` binary: a thin command-line layer over the library crates.
//! Each subcommand lives in `cmd/<name>.rs`; errors are printed as one line (`{:#}`) with a
//! non-zero exit status.
//!
//! Cargo features choose which half a binary links (DESIGN §4): `phone` (infer, profile --role
//! mobile, model info, frame inspect), `server` (serve, profile --role cloud, model info, frame
//! inspect), `full` (the default: both plus training, search, reports, demo and bench, and the
//! embedded dataset). Only `full` links the training crate.

#[cfg(not(any(feature = "phone", feature = "server")))]
compile_error!("bottlenet-cli needs the feature `phone`, `server` or `full` (the default)");

mod cmd;
mod engine;
mod c_runtime_env;
#[cfg(feature = "phone")]
mod record;
mod serving;
#[cfg(feature = "phone")]
mod slower_phone;
#[cfg(feature = "tract")]
mod tract_engine;
#[cfg(feature = "tract")]
mod tract_pool;
#[cfg(feature = "server")]
mod wire_meter;
#[cfg(feature = "exported-graphs")]
mod exported_graph;
#[cfg(feature = "exported-graphs")]
mod engine_trial;
#[cfg(feature = "xnnpack")]
mod xnnpack_engine;
#[cfg(feature = "onednn")]
mod onednn_engine;
#[cfg(any(feature = "xnnpack", feature = "onednn"))]
mod onnx_nodes;

use clap::{Parser, Subcommand};

/// What a phone or a server build holds, for `--help` (the full build shows the package's
/// description).
#[cfg(not(feature = "full"))]
const SPLIT_ABOUT: &str = match (cfg!(feature = "phone"), cfg!(feature = "server")) {
    (true, true) => "BottleNet phone and server build: infer, serve, profile, model info, frame inspect (no training code, no embedded dataset).",
    (true, false) => "BottleNet phone build: infer, profile --role mobile, model info, frame inspect (no training code, no embedded dataset).",
    _ => "BottleNet server build: serve, profile --role cloud, model info, frame inspect (no training code, no embedded dataset).",
};

/// BottleNet: split inference with a learnable bottleneck and JPEG-compressed features.
#[derive(Debug, Parser)]
#[command(name = "bottlenet", version)]
#[cfg_attr(feature = "full", command(about))]
#[cfg_attr(not(feature = "full"), command(about = SPLIT_ABOUT))]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Kernels of the convolutions on the flex CPU device (training and search steps, evaluation,
    /// `--engine burn`): onednn (oneDNN, the default where the build linked Debian's libdnnl-dev)
    /// or burn (flex's own). docs/engines.md compares them.
    #[arg(long, global = true, value_name = "onednn|burn", value_parser = bottlenet_model::ConvKernels::parse)]
    conv_kernels: Option<bottlenet_model::ConvKernels>,
    /// Kernels of training BatchNorm (and the ReLU after it) on the flex CPU device: fused (one
    /// operation forward and one backward, the default) or burn (burn's element-wise
    /// composition). docs/engines.md compares them.
    #[arg(long, global = true, value_name = "fused|burn", value_parser = bottlenet_model::NormKernels::parse)]
    norm_kernels: Option<bottlenet_model::NormKernels>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The paper end to end on the embedded default: Algorithm 1 per network, then real runs
    /// through a loopback server with a paced up-link; prints Table 5 and writes the report.
    #[cfg(feature = "full")]
    Demo(cmd::demo::DemoArgs),
    /// Benchmarks: codec round trip, head/tail latency per split, training step, server throughput.
    #[cfg(feature = "full")]
    Bench(cmd::bench::BenchArgs),
    /// Measure every codec on a feature tensor: frame bytes, encode/decode µs, round-trip error.
    #[cfg(feature = "full")]
    Codec(cmd::codec::CodecArgs),
    /// Work with wire frames.
    #[command(subcommand)]
    Frame(cmd::frame::FrameCommand),
    /// Train one experiment (baseline, aware or naive) into a model bundle.
    #[cfg(feature = "full")]
    Train(cmd::train::TrainArgs),
    /// Top-1 accuracy and real frame bytes of a bundle through the phone → server path.
    #[cfg(feature = "full")]
    Eval(cmd::eval::EvalArgs),
    /// Write a bundle's phone half, server half and full network as ONNX files.
    #[cfg(feature = "full")]
    Export(cmd::export::ExportArgs),
    /// Algorithm 1's training phase over a grid (shardable), or `search merge`.
    #[cfg(feature = "full")]
    Search(cmd::search::SearchArgs),
    /// Algorithm 1's profiling phase: measure TM_j or TC_j of every split on this machine.
    Profile(cmd::profile::ProfileArgs),
    /// Serve a bundle's server halves over gRPC (every split, plus cloud-only).
    #[cfg(feature = "server")]
    Serve(cmd::serve::ServeArgs),
    /// Run test images through a server from the phone side and summarise accuracy, bytes, latency.
    #[cfg(feature = "phone")]
    Infer(cmd::infer::InferArgs),
    /// Inspect a backbone: split points, feature shapes and sizes, head / tail MACs.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// Algorithm 1's selection: rank every split by latency or phone energy on one up-link.
    #[cfg(feature = "full")]
    Select(cmd::select::SelectArgs),
    /// Write the paper's Tables 4-5 and plots from results and device profiles.
    #[cfg(feature = "full")]
    Report(cmd::report::ReportArgs),
}

/// Logs go to stderr through `tracing`, filtered by `RUST_LOG` when set; otherwise `serve` logs
/// at info (start, failed batches, refused tokens) and every other command at warn.
fn init_logging(command: &Command) {
    #[cfg(feature = "server")]
    let default = if matches!(command, Command::Serve(_)) { "info" } else { "warn" };
    #[cfg(not(feature = "server"))]
    let default = {
        let _ = command;
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second subscriber (never installed here) is the only failure, and harmless.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

fn main() {
    let reexec_failure = c_runtime_env::reexec_with_settings();
    let cli = Cli::parse();
    init_logging(&cli.command);
    if let Some(reason) = reexec_failure {
        tracing::debug!("{reason}");
    }
    // Both parsed by clap (a bad value is its one-line error, exit 2), set before any work.
    if let Some(kernels) = cli.conv_kernels {
        bottlenet_model::set_conv_kernels(kernels);
    }
    if let Some(kernels) = cli.norm_kernels {
        bottlenet_model::set_norm_kernels(kernels);
    }
    let spin = std::env::var("GOMP_SPINCOUNT").unwrap_or_else(|_| "libgomp's default".into());
    let mmap_threshold = std::env::var("MALLOC_MMAP_THRESHOLD_").unwrap_or_else(|_| "glibc's default".into());
    tracing::debug!(conv_kernels = bottlenet_model::conv_kernels().name(), norm_kernels = bottlenet_model::norm_kernels().name(), gomp_spincount = %spin, malloc_mmap_threshold = %mmap_threshold, "kernels on flex");
    let result = match cli.command {
        #[cfg(feature = "full")]
        Command::Demo(args) => cmd::demo::run(args),
        #[cfg(feature = "full")]
        Command::Bench(args) => cmd::bench::run(args),
        #[cfg(feature = "full")]
        Command::Codec(args) => cmd::codec::run(args),
        Command::Frame(command) => cmd::frame::run(command),
        #[cfg(feature = "full")]
        Command::Train(args) => cmd::train::run(args),
        #[cfg(feature = "full")]
        Command::Eval(args) => cmd::eval::run(args),
        #[cfg(feature = "full")]
        Command::Export(args) => cmd::export::run(args),
        #[cfg(feature = "full")]
        Command::Search(args) => cmd::search::run(args),
        Command::Profile(args) => cmd::profile::run(args),
        #[cfg(feature = "server")]
        Command::Serve(args) => cmd::serve::run(args),
        #[cfg(feature = "phone")]
        Command::Infer(args) => cmd::infer::run(args),
        Command::Model(command) => cmd::model::run(command),
        #[cfg(feature = "full")]
        Command::Select(args) => cmd::select::run(args),
        #[cfg(feature = "full")]
        Command::Report(args) => cmd::report::run(args),
    };
    if let Err(error) = result {
        eprintln!("error: {}", one_line(&error));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (library errors often print their source themselves).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
