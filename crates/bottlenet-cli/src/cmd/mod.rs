//! One module per subcommand, and the helpers they share. Which modules a build holds follows
//! its cargo features (see `main.rs`); nothing here outside `full` may use the training crate.

#[cfg(feature = "full")]
pub mod bench;
#[cfg(all(feature = "full", feature = "tract"))]
pub mod bench_engines;
#[cfg(all(feature = "full", feature = "tract"))]
pub mod bench_tract_ops;
#[cfg(feature = "full")]
pub mod codec;
#[cfg(feature = "full")]
pub mod demo;
#[cfg(feature = "full")]
pub mod eval;
#[cfg(feature = "full")]
pub mod export;
pub mod frame;
pub mod profile;
#[cfg(feature = "phone")]
pub mod infer;
pub mod model;
#[cfg(feature = "full")]
pub mod report;
#[cfg(feature = "full")]
pub mod select;
#[cfg(feature = "full")]
pub mod search;
#[cfg(feature = "server")]
pub mod serve;
#[cfg(feature = "full")]
pub mod train;

use anyhow::{Context, Result, bail};
use bottlenet_data::{DataSource, DatasetPair, FolderOptions, SYSTEM_FASHION_MNIST_DIR, resolve};
use bottlenet_model::{DeviceChoice, Manifest};
#[cfg(feature = "full")]
use bottlenet_train::config::DataSection;
use std::path::Path;

/// The dataset: `explicit`, else Debian's full Fashion-MNIST, else the embedded subset; image
/// folders read with `folder`. Files that could not be read are reported on stderr, one line each.
pub fn open_data_with(explicit: Option<&Path>, folder: &FolderOptions) -> Result<(DatasetPair, DataSource)> {
    let (pair, source) = resolve(explicit, Some(Path::new(SYSTEM_FASHION_MNIST_DIR)), folder)?;
    for warning in &pair.warnings {
        eprintln!("warning: skipped {warning}");
    }
    Ok((pair, source))
}

/// The dataset of an experiment: `--data` over the config's `[data] path`, else the default
/// resolution; image folders resized and cropped as the section says (paper: 256 → 224).
#[cfg(feature = "full")]
pub fn open_experiment_data(explicit: Option<&Path>, section: &DataSection) -> Result<(DatasetPair, DataSource)> {
    open_data_with(explicit.or(section.path.as_deref()), &section.folder_options())
}

/// The dataset a bundle runs on: image folders prepared as the bundle's training data was (the
/// manifest's resize, a crop of the bundle's input size). Data whose images differ from the
/// bundle's input (channels or size) is refused in one line.
pub fn open_bundle_data(explicit: Option<&Path>, manifest: &Manifest) -> Result<(DatasetPair, DataSource)> {
    let crop = manifest.input_shape[1] as u32;
    let folder = FolderOptions { resize: manifest.resize.unwrap_or(crop), crop, ..FolderOptions::default() };
    let (pair, source) = open_data_with(explicit, &folder)?;
    check_bundle_data(&pair, manifest)?;
    Ok((pair, source))
}

/// Refuses data whose samples are not `[C, H, W]` of the bundle's input.
pub fn check_bundle_data(data: &DatasetPair, manifest: &Manifest) -> Result<()> {
    let [c, h, w] = data.test.input_shape();
    let [bc, bh, bw] = manifest.input_shape;
    if [c, h, w] != manifest.input_shape {
        bail!("the dataset's images are {c}×{h}×{w} (channels×height×width) but the bundle expects {bc}×{bh}×{bw}; pass --data with matching images or a bundle trained on this data");
    }
    if data.test.num_classes() != manifest.num_classes {
        bail!("the dataset has {} classes but the bundle was trained for {}; pass --data with the bundle's classes", data.test.num_classes(), manifest.num_classes);
    }
    Ok(())
}

/// `choice` when this build can run it, else one line saying how to get it. Logs which
/// engine (and, for wgpu, which adapter) will run the model.
pub fn device_ready(choice: DeviceChoice) -> Result<DeviceChoice> {
    if !choice.is_available() {
        bail!("--device {choice} is not compiled into this binary; rebuild with `cargo build --release -p bottlenet-cli --features {choice}` or pass --device flex");
    }
    let device = choice.device()?;
    tracing::info!(device = %choice, detail = %bottlenet_model::device::describe(choice, &device), "compute device");
    Ok(choice)
}

/// How a profile or report names the engine: the CPU (and threads) and oneDNN, XNNPACK, tract,
/// the fastest of them (auto) or burn flex on the CPU, the adapter for a GPU.
pub fn engine_name(choice: DeviceChoice, engine: crate::engine::Engine, threads: usize) -> String {
    match (choice, engine) {
        (DeviceChoice::Flex, engine) if engine != crate::engine::Engine::Burn => format!("{} ({threads} threads, {})", profile::cpu_name(), engine.describe()),
        (DeviceChoice::Flex, _) => format!("{} ({threads} threads, burn flex CPU backend)", profile::cpu_name()),
        (other, _) => match other.device() {
            Ok(device) => format!("burn {other}: {}", bottlenet_model::device::describe(other, &device)),
            Err(e) => format!("burn {other} ({e})"),
        },
    }
}

/// A progress bar on stderr, hidden when `quiet`, in the training crate's style
/// (`bottlenet_train::trainer::progress_bar`; kept here so the phone build needs no training code).
#[cfg(feature = "phone")]
pub fn progress(quiet: bool, len: u64, prefix: String) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len).with_prefix(prefix);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A split written `RBj`, `rbj` or `j`: its index `j`.
#[cfg(feature = "phone")]
pub fn parse_split(text: &str) -> Result<usize> {
    let digits = text.trim().trim_start_matches("RB").trim_start_matches("rb");
    digits.parse().with_context(|| format!("split {text:?} is not RBj or j (e.g. RB1)"))
}

/// The bearer token in `path`: its first line, surrounding whitespace removed (shared by
/// `serve --token-file` and `infer --token-file`, so one file configures both ends).
pub fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        bail!("the token file {} is empty; put the token on its first line", path.display());
    }
    Ok(token.to_string())
}
