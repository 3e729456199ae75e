//! Model bundles (DESIGN §5): a folder with `manifest.json` and each split's weights stored per
//! half, so a phone loads only heads and a server only tails (paper §3.4: "both ends hold every
//! split's half").
//!
//! ```text
//! bundle/
//!   manifest.json        architecture, input shape, normalisation, class names, one entry per split
//!   mobile/RB3.bpk       backbone head (stem, blocks 1..=3) + reduction unit   (burnpack)
//!   cloud/RB3.bpk        restoration unit + backbone tail (blocks 4..=N, fc)  (burnpack)
//!   full.bpk             optional: the unsplit network without a bottleneck (the trained
//!                        baseline), which the mobile-only and cloud-only paths run
//! ```
//!
//! Blocks shared by several splits are stored once per split that needs them (simple and correct).
//! Loading rebuilds each half from the manifest and refuses weights whose parameter count, tensor
//! names or shapes differ from it. Saving writes a complete bundle into a temporary folder beside
//! the target and renames it into place, so a reader never sees half a bundle.

use crate::arch::Arch;
use crate::bottlenet::{BottleNet, BottleNetConfig, CloudHalf, MobileHalf};
use crate::error::{Error, Result};
use bottlenet_codec::{CodecKind, CodecParams};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Name of the manifest inside a bundle folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Per-channel input normalisation, `(x − mean) / std`, applied before the backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// torchvision's ImageNet statistics.
    pub fn imagenet() -> Self {
        Self { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    /// No change: mean 0, std 1 on every channel.
    pub fn identity(channels: usize) -> Self {
        Self { mean: vec![0.0; channels], std: vec![1.0; channels] }
    }

    /// Checks one positive, finite std and one finite mean per channel.
    pub fn validate(&self, channels: usize) -> Result<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(Error::Config(format!(
                "normalisation has {} means and {} stds for {channels} input channels",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite()) || self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(Error::Config("normalisation needs finite means and positive finite stds".into()));
        }
        Ok(())
    }

    /// `(x − mean) / std` per channel.
    ///
    /// # Shapes
    /// - `x`: `[batch, C, H, W]` with `C` = number of means
    pub fn apply(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let dims = x.dims();
        self.validate(dims[1])?;
        let device = x.device();
        let mean = Tensor::<4>::from_data(TensorData::new(self.mean.clone(), [1, dims[1], 1, 1]), &device);
        let std = Tensor::<4>::from_data(TensorData::new(self.std.clone(), [1, dims[1], 1, 1]), &device);
        Ok((x - mean) / std)
    }
}

/// One half's weight file, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsEntry {
    /// Path relative to the bundle folder.
    pub file: String,
    /// Number of scalar parameters the file must hold.
    pub num_params: usize,
}

/// One split's entry: where, how much reduction, which codec, how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitEntry {
    /// `RBj`.
    pub name: String,
    /// `j`.
    pub split: usize,
    pub c_prime: usize,
    pub s: usize,
    pub codec: CodecKind,
    pub quality: u8,
    pub bits: u8,
    /// Top-1 accuracy in `[0, 1]` with the codec in the loop, when training measured it.
    pub accuracy: Option<f64>,
    /// Mean frame bytes per image (headers included), when training measured it.
    pub mean_bytes: Option<f64>,
    pub mobile: WeightsEntry,
    pub cloud: WeightsEntry,
}

impl SplitEntry {
    /// The codec parameters of this split.
    pub fn codec_params(&self) -> CodecParams {
        CodecParams { codec: self.codec, quality: self.quality, bits: self.bits }
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub arch: Arch,
    #[serde(default = "crate::arch::default_width")]
    pub width: usize,
    /// One sample's input, `[C, H, W]`.
    pub input_shape: [usize; 3],
    pub num_classes: usize,
    pub normalization: Normalization,
    /// Image-folder data: the shorter side photos are resized to before the centre crop to
    /// `input_shape` (DESIGN §6), so eval, profile and the phone prepare images exactly as
    /// training did. Absent for data stored at its native size (IDX, CIFAR-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<u32>,
    /// One name per class (may be empty when the data set has none).
    pub class_names: Vec<String>,
    /// Sorted by split index, at most one entry per split.
    pub splits: Vec<SplitEntry>,
    /// The whole network without a bottleneck (paper: mobile-only and cloud-only run the
    /// unmodified network); absent in bundles that hold splits only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<FullEntry>,
}

/// The unsplit network's weight file and how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullEntry {
    /// Path relative to the bundle folder.
    pub file: String,
    /// Number of scalar parameters the file must hold.
    pub num_params: usize,
    /// Top-1 accuracy in `[0, 1]` on the uncompressed input, when training measured it.
    pub accuracy: Option<f64>,
}

/// File name of the unsplit network inside a bundle.
pub const FULL_FILE: &str = "full.bpk";

/// What training measured for one split (written into the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SplitStats {
    pub accuracy: Option<f64>,
    pub mean_bytes: Option<f64>,
}

impl Manifest {
    /// The model configuration of one split entry.
    pub fn config(&self, entry: &SplitEntry) -> BottleNetConfig {
        BottleNetConfig {
            arch: self.arch,
            width: self.width,
            input_shape: self.input_shape,
            num_classes: self.num_classes,
            split: Some(entry.split),
            c_prime: entry.c_prime,
            s: entry.s,
            codec: entry.codec_params(),
        }
    }

    /// The entry for split `j`.
    pub fn entry(&self, j: usize) -> Option<&SplitEntry> {
        self.splits.iter().find(|e| e.split == j)
    }

    /// Checks the manifest on its own (weights are checked when they are loaded).
    pub fn validate(&self) -> Result<()> {
        if self.format_version != FORMAT_VERSION {
            return Err(Error::Config(format!(
                "manifest format version {} is not supported (this build reads {FORMAT_VERSION})",
                self.format_version
            )));
        }
        self.normalization.validate(self.input_shape[0])?;
        if !self.class_names.is_empty() && self.class_names.len() != self.num_classes {
            return Err(Error::Config(format!(
                "{} class names for {} classes",
                self.class_names.len(),
                self.num_classes
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for entry in &self.splits {
            if !seen.insert(entry.split) {
                return Err(Error::Config(format!("split {} appears twice", entry.split)));
            }
            if entry.name != format!("RB{}", entry.split) {
                return Err(Error::Config(format!("split {} is named {:?}, expected RB{}", entry.split, entry.name, entry.split)));
            }
            self.config(entry).validate()?;
            for file in [&entry.mobile.file, &entry.cloud.file] {
                check_relative(file)?;
            }
        }
        if let Some(full) = &self.full {
            check_relative(&full.file)?;
        }
        Ok(())
    }

    /// The configuration of the unsplit network.
    pub fn full_config(&self) -> BottleNetConfig {
        BottleNetConfig::new(self.arch, self.input_shape, self.num_classes).with_width(self.width)
    }
}

/// Refuses absolute paths and `..`, so a manifest cannot point outside its bundle.
fn check_relative(file: &str) -> Result<()> {
    let path = Path::new(file);
    if file.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::Config(format!("weight file {file:?} must be a plain relative path inside the bundle")));
    }
    Ok(())
}

/// A bundle being assembled from trained models, ready to [`save`](Bundle::save).
#[derive(Debug)]
pub struct Bundle {
    manifest: Manifest,
    halves: BTreeMap<usize, (MobileHalf, CloudHalf)>,
    full: Option<BottleNet>,
}

/// One side's halves, loaded from a bundle: [`MobileBundle`] on the phone, [`CloudBundle`] on the
/// server.
#[derive(Debug)]
pub struct HalfBundle<H> {
    pub manifest: Manifest,
    halves: BTreeMap<usize, H>,
}

/// The phone's view of a bundle: every split's head + reduction.
pub type MobileBundle = HalfBundle<MobileHalf>;
/// The server's view of a bundle: every split's restoration + tail.
pub type CloudBundle = HalfBundle<CloudHalf>;

impl<H> HalfBundle<H> {
    /// The half for split `j`.
    pub fn half(&self, j: usize) -> Option<&H> {
        self.halves.get(&j)
    }

    /// Split indices present, ascending.
    pub fn splits(&self) -> impl Iterator<Item = usize> + '_ {
        self.halves.keys().copied()
    }

    /// Drops every half, keeping the manifest: e.g. a side that runs its halves in another
    /// engine frees burn's copies.
    pub fn clear_halves(&mut self) {
        self.halves.clear();
    }

    /// The same bundle with `f` applied to every half (e.g. BatchNorm folding for inference).
    pub fn map_halves(self, mut f: impl FnMut(H) -> H) -> Self {
        Self { manifest: self.manifest, halves: self.halves.into_iter().map(|(j, h)| (j, f(h))).collect() }
    }
}

fn bundle_err(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Bundle { path: dir.to_path_buf(), reason: reason.into() }
}

impl Bundle {
    /// An empty bundle for models of one architecture and input.
    pub fn new(
        arch: Arch,
        width: usize,
        input_shape: [usize; 3],
        num_classes: usize,
        normalization: Normalization,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            arch,
            width,
            input_shape,
            num_classes,
            normalization,
            resize: None,
            class_names,
            splits: Vec::new(),
            full: None,
        };
        manifest.validate()?;
        BottleNetConfig::new(arch, input_shape, num_classes).with_width(width).validate()?;
        Ok(Self { manifest, halves: BTreeMap::new(), full: None })
    }

    /// Records the image-folder resize the training data used (see [`Manifest::resize`]).
    pub fn set_resize(&mut self, resize: Option<u32>) -> Result<()> {
        if let Some(side) = resize
            && (side as usize) < self.manifest.input_shape[1].max(self.manifest.input_shape[2])
        {
            return Err(Error::Config(format!("resize {side} is smaller than the input {:?}", self.manifest.input_shape)));
        }
        self.manifest.resize = resize;
        Ok(())
    }

    /// The manifest as it would be written.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Adds (or replaces) the split of a trained BottleNet with what training measured.
    pub fn add(&mut self, net: &BottleNet, stats: SplitStats) -> Result<()> {
        let config = net.config();
        let m = &self.manifest;
        if (config.arch, config.width, config.input_shape, config.num_classes) != (m.arch, m.width, m.input_shape, m.num_classes) {
            return Err(Error::Config(format!(
                "model ({} width {} input {:?}, {} classes) does not fit this bundle ({} width {} input {:?}, {} classes)",
                config.arch, config.width, config.input_shape, config.num_classes, m.arch, m.width, m.input_shape, m.num_classes
            )));
        }
        let Some(j) = config.split else {
            return Err(Error::Config("a bundle holds split models; this one has no split".into()));
        };
        // Inference copies: BN uses its running statistics, no autodiff graph is kept.
        let net = net.valid();
        let (mobile, cloud) = (net.mobile_half()?, net.cloud_half()?);
        let name = config.split_name();
        let entry = SplitEntry {
            name: name.clone(),
            split: j,
            c_prime: config.c_prime,
            s: config.s,
            codec: config.codec.codec,
            quality: config.codec.quality,
            bits: config.codec.bits,
            accuracy: stats.accuracy,
            mean_bytes: stats.mean_bytes,
            mobile: WeightsEntry { file: format!("mobile/{name}.bpk"), num_params: mobile.num_params() },
            cloud: WeightsEntry { file: format!("cloud/{name}.bpk"), num_params: cloud.num_params() },
        };
        self.manifest.splits.retain(|e| e.split != j);
        self.manifest.splits.push(entry);
        self.manifest.splits.sort_by_key(|e| e.split);
        self.halves.insert(j, (mobile, cloud));
        Ok(())
    }

    /// Adds (or replaces) the unsplit network (a trained baseline, no bottleneck), which the
    /// mobile-only and cloud-only paths run.
    pub fn set_full(&mut self, net: &BottleNet, accuracy: Option<f64>) -> Result<()> {
        let config = net.config();
        let expected = self.manifest.full_config();
        if config.split.is_some() || config.backbone() != expected.backbone() {
            return Err(Error::Config(format!(
                "the full network must be a {} width {} model for input {:?} with {} classes and no split",
                expected.arch, expected.width, expected.input_shape, expected.num_classes
            )));
        }
        let net = net.valid();
        self.manifest.full = Some(FullEntry { file: FULL_FILE.to_string(), num_params: net.num_params(), accuracy });
        self.full = Some(net);
        Ok(())
    }

    /// Writes the bundle to `dir`, replacing what was there. Everything is first written into a
    /// temporary folder beside `dir` and then renamed into place.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.manifest.validate()?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".bundle-tmp-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(format!("creating a temporary folder in {}", parent.display()), e))?;
        for dir_name in ["mobile", "cloud"] {
            let sub = tmp.path().join(dir_name);
            fs::create_dir_all(&sub).map_err(|e| Error::io(format!("creating {}", sub.display()), e))?;
        }
        for entry in &self.manifest.splits {
            let (mobile, cloud) = self
                .halves
                .get(&entry.split)
                .ok_or_else(|| bundle_err(dir, format!("no weights for split {}", entry.name)))?;
            for (file, record) in [(&entry.mobile.file, mobile.clone().into_record()), (&entry.cloud.file, cloud.clone().into_record())] {
                let path = tmp.path().join(file);
                record.save(&path).map_err(|e| bundle_err(dir, format!("writing {file}: {e}")))?;
            }
        }
        if let Some(entry) = &self.manifest.full {
            let net = self.full.as_ref().ok_or_else(|| bundle_err(dir, "no weights for the full network"))?;
            net.clone().into_record().save(tmp.path().join(&entry.file)).map_err(|e| bundle_err(dir, format!("writing {}: {e}", entry.file)))?;
        }
        let manifest_path = tmp.path().join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| Error::Json { path: manifest_path.clone(), source: e })?;
        let mut file = fs::File::create(&manifest_path).map_err(|e| Error::io(format!("creating {}", manifest_path.display()), e))?;
        file.write_all(&json)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("writing {}", manifest_path.display()), e))?;
        let staged = tmp.keep();
        replace_dir(&staged, dir).inspect_err(|_| {
            let _ = fs::remove_dir_all(&staged);
        })
    }

    /// Reads and checks `dir/manifest.json` without loading weights.
    pub fn read_manifest(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| Error::Json { path: path.clone(), source: e })?;
        manifest.validate().map_err(|e| bundle_err(dir, e.to_string()))?;
        Ok(manifest)
    }

    /// Loads every split's phone half (head + reduction).
    pub fn load_mobile(dir: &Path, device: &Device) -> Result<MobileBundle> {
        load_side(dir, device, "mobile", |e| &e.mobile, MobileHalf::new)
    }

    /// Loads every split's server half (restoration + tail).
    pub fn load_cloud(dir: &Path, device: &Device) -> Result<CloudBundle> {
        load_side(dir, device, "cloud", |e| &e.cloud, CloudHalf::new)
    }

    /// Loads the unsplit network when the bundle has one.
    pub fn load_full(dir: &Path, device: &Device) -> Result<Option<BottleNet>> {
        let manifest = Self::read_manifest(dir)?;
        let Some(entry) = &manifest.full else { return Ok(None) };
        let net = BottleNet::new(&manifest.full_config(), device)?;
        if net.num_params() != entry.num_params {
            return Err(bundle_err(
                dir,
                format!("the full network has {} parameters but the manifest records {} for {}", net.num_params(), entry.num_params, entry.file),
            ));
        }
        let net = net
            .try_load_file(dir.join(&entry.file))
            .map_err(|e| bundle_err(dir, format!("{} does not match the manifest's full network: {e}", entry.file)))?;
        Ok(Some(net))
    }

    /// Loads both halves of every split and the full network (e.g. to add splits and save again).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let full = Self::load_full(dir, device)?;
        let mobile = Self::load_mobile(dir, device)?;
        let mut cloud = Self::load_cloud(dir, device)?;
        let halves = mobile
            .halves
            .into_iter()
            .map(|(j, m)| cloud.halves.remove(&j).map(|c| (j, (m, c))).ok_or_else(|| bundle_err(dir, format!("split {j} has no cloud half"))))
            .collect::<Result<_>>()?;
        Ok(Self { manifest: mobile.manifest, halves, full })
    }
}

/// Builds each half from the manifest, then loads its weights with full validation.
fn load_side<H: Module>(
    dir: &Path,
    device: &Device,
    side: &str,
    weights: impl Fn(&SplitEntry) -> &WeightsEntry,
    build: impl Fn(&BottleNetConfig, &Device) -> Result<H>,
) -> Result<HalfBundle<H>> {
    let manifest = Bundle::read_manifest(dir)?;
    let mut halves = BTreeMap::new();
    for entry in &manifest.splits {
        let w = weights(entry);
        let half = build(&manifest.config(entry), device)?;
        let expected = half.num_params();
        if expected != w.num_params {
            return Err(bundle_err(
                dir,
                format!(
                    "{side} half of {} ({}, c'={}, s={}) has {expected} parameters but the manifest records {} for {}",
                    entry.name, manifest.arch, entry.c_prime, entry.s, w.num_params, w.file
                ),
            ));
        }
        let path = dir.join(&w.file);
        let half = half.try_load_file(&path).map_err(|e| {
            bundle_err(
                dir,
                format!(
                    "{} does not match the manifest's {side} half of {} ({}, c'={}, s={}): {e}",
                    w.file, entry.name, manifest.arch, entry.c_prime, entry.s
                ),
            )
        })?;
        halves.insert(entry.split, half);
    }
    Ok(HalfBundle { manifest, halves })
}

/// Moves `staged` to `dir`. An existing `dir` is first moved aside and removed once the new one is
/// in place (and restored if that fails).
fn replace_dir(staged: &Path, dir: &Path) -> Result<()> {
    if !dir.exists() {
        return fs::rename(staged, dir).map_err(|e| Error::io(format!("moving the new bundle to {}", dir.display()), e));
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into());
    let aside = dir.with_file_name(format!(".{name}.old-{}", std::process::id()));
    fs::rename(dir, &aside).map_err(|e| Error::io(format!("moving the old bundle {} aside", dir.display()), e))?;
    if let Err(e) = fs::rename(staged, dir) {
        let _ = fs::rename(&aside, dir);
        return Err(Error::io(format!("moving the new bundle to {}", dir.display()), e));
    }
    fs::remove_dir_all(&aside).map_err(|e| Error::io(format!("removing the old bundle {}", aside.display()), e))
}
