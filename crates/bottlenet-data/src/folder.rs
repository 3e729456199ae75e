//! Image folders in the miniImageNet/ImageNet convention: `root/<class>/**/*.{jpg,jpeg,png}`,
//! or `root/train/<class>/…` with `root/test/<class>/…` (or `root/val/…`) when the split is
//! given. Images are decoded on demand, converted to RGB, resized so the shorter side is
//! `resize`, then cropped to `crop × crop`: at random for training (paper §3.1, a random 224×224
//! region), in the centre for evaluation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::imageops::{self, FilterType};
use image::{ImageReader, RgbImage};
use rand::Rng;
use rayon::prelude::*;

use crate::dataset::{
    Augment, Dataset, DatasetPair, Normalization, RawImage, RawSample, check_index,
};
use crate::error::{Error, Result, Warning};
use crate::rng::{Purpose, stream};
use crate::split::{PAPER_TRAIN_FRACTION, stratified_split};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// How thoroughly files are checked while the folder is scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Read each file's header (format and size): cheap, catches most bad files.
    #[default]
    Header,
    /// Decode every image once: slow for large folders, catches truncated bodies too.
    Decode,
}

/// How an image folder is read.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderOptions {
    /// Shorter side after resizing, in pixels (≥ `crop`).
    pub resize: u32,
    /// Side of the square crop fed to the network (paper: 224).
    pub crop: u32,
    /// Training share when the folder has no split (paper: 0.85).
    pub train_fraction: f64,
    /// Seed of that split.
    pub split_seed: u64,
    /// Fail on the first unreadable file instead of skipping it with a warning.
    pub strict: bool,
    pub verify: Verify,
    pub normalization: Normalization,
}

impl Default for FolderOptions {
    /// The paper's miniImageNet setting: shorter side 256, 224×224 crops, 85/15 split,
    /// ImageNet statistics.
    fn default() -> Self {
        Self {
            resize: 256,
            crop: 224,
            train_fraction: PAPER_TRAIN_FRACTION,
            split_seed: 0,
            strict: false,
            verify: Verify::Header,
            normalization: Normalization::imagenet(),
        }
    }
}

impl FolderOptions {
    fn validate(&self) -> Result<()> {
        if self.crop == 0 || self.resize < self.crop {
            return Err(Error::InvalidOption(format!(
                "image folders need 0 < crop <= resize, got crop {} and resize {}",
                self.crop, self.resize
            )));
        }
        if !(self.train_fraction > 0.0 && self.train_fraction < 1.0) {
            return Err(Error::InvalidOption(format!(
                "train fraction must be strictly between 0 and 1, got {}",
                self.train_fraction
            )));
        }
        if self.normalization.channels() != 3 {
            return Err(Error::InvalidOption(format!(
                "image folders are read as RGB; normalisation has {} channel(s)",
                self.normalization.channels()
            )));
        }
        Ok(())
    }
}

/// One image file and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: PathBuf,
    label: u32,
}

/// A list of image files decoded on demand.
#[derive(Debug, Clone)]
pub struct FolderDataset {
    name: String,
    entries: Arc<[Entry]>,
    class_names: Arc<[String]>,
    resize: u32,
    crop: u32,
    normalization: Normalization,
}

impl Dataset for FolderDataset {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn input_shape(&self) -> [usize; 3] {
        [3, self.crop as usize, self.crop as usize]
    }

    fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    fn resize(&self) -> Option<u32> {
        Some(self.resize)
    }

    fn label(&self, index: usize) -> Result<u32> {
        check_index(index, self.len())?;
        Ok(self.entries[index].label)
    }

    fn path(&self, index: usize) -> Option<&Path> {
        self.entries.get(index).map(|e| e.path.as_path())
    }

    fn raw(&self, index: usize, augment: Augment) -> Result<RawSample> {
        check_index(index, self.len())?;
        let entry = &self.entries[index];
        let img = decode_rgb(&entry.path)?;
        let (w, h) = img.dimensions();
        let (nw, nh) = resized_dims(w, h, self.resize);
        // The crop's corner in the resized image: uniform for training, centred for evaluation.
        let (x0, y0) = match augment {
            Augment::Train { seed, epoch } => {
                let mut rng = stream(Purpose::Augment, seed, epoch, index as u64);
                (
                    rng.random_range(0..=nw - self.crop),
                    rng.random_range(0..=nh - self.crop),
                )
            }
            Augment::Eval => ((nw - self.crop) / 2, (nh - self.crop) / 2),
        };
        let crop = crop_resized(&img, (nw, nh), (x0, y0), self.crop);
        let side = self.crop as usize;
        Ok(RawSample {
            image: RawImage::new(side, side, 3, crop.into_raw())?,
            label: entry.label,
        })
    }
}

/// One image file prepared exactly as an evaluation sample of an image folder is: decoded,
/// resized so the shorter side is `resize`, centre-cropped to `crop × crop`, then kept as RGB
/// (`channels == 3`) or converted to luma (`channels == 1`, for grayscale models). This is what
/// the phone does with a user's own photo (`bottlenet infer --images`).
pub fn load_image_file(path: &Path, resize: u32, crop: u32, channels: usize) -> Result<RawImage> {
    if crop == 0 || resize < crop {
        return Err(Error::InvalidOption(format!("image size: resize {resize} must be at least crop {crop}, and crop at least 1")));
    }
    if channels != 1 && channels != 3 {
        return Err(Error::InvalidOption(format!("images have 1 or 3 channels, not {channels}")));
    }
    let img = decode_rgb(path)?;
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::Image { path: path.to_path_buf(), reason: "image has no pixels".into() });
    }
    let (nw, nh) = resized_dims(w, h, resize);
    let rgb = crop_resized(&img, (nw, nh), ((nw - crop) / 2, (nh - crop) / 2), crop);
    let side = crop as usize;
    let pixels = if channels == 3 { rgb.into_raw() } else { image::DynamicImage::ImageRgb8(rgb).into_luma8().into_raw() };
    RawImage::new(side, side, channels, pixels)
}

/// Decodes `path` (JPEG or PNG, recognised by content) to 8-bit RGB.
fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let reader = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader.decode().map_err(|e| Error::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(img.into_rgb8())
}

/// Size after resizing `w × h` so the shorter side is `target`, keeping the aspect ratio; the
/// longer side is rounded and never below `target`.
fn resized_dims(w: u32, h: u32, target: u32) -> (u32, u32) {
    let scale = |long: u32, short: u32| {
        let v = (u64::from(long) * u64::from(target) + u64::from(short) / 2) / u64::from(short);
        u32::try_from(v).unwrap_or(u32::MAX).max(target)
    };
    if w <= h {
        (target, scale(h, w))
    } else {
        (scale(w, h), target)
    }
}

/// The `crop × crop` window at `(x0, y0)` of `img` resized to `resized` (bilinear,
/// antialiased). Only the source pixels under the window are resampled, which gives the same
/// picture as resizing the whole image and then cropping, at a fraction of the cost.
fn crop_resized(img: &RgbImage, resized: (u32, u32), (x0, y0): (u32, u32), crop: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = resized;
    // Source pixels per resized pixel is short/target on both axes (up to rounding).
    let to_src = |v: u32, src: u32, dst: u32| {
        ((u64::from(v) * u64::from(src) + u64::from(dst) / 2) / u64::from(dst)) as u32
    };
    let side_w = to_src(crop, w, nw).clamp(1, w);
    let side_h = to_src(crop, h, nh).clamp(1, h);
    let sx = to_src(x0, w, nw).min(w - side_w);
    let sy = to_src(y0, h, nh).min(h - side_h);
    let window = imageops::crop_imm(img, sx, sy, side_w, side_h).to_image();
    if (side_w, side_h) == (crop, crop) {
        window
    } else {
        imageops::resize(&window, crop, crop, FilterType::Triangle)
    }
}

/// Why `path` cannot be used, or `None` if it passed the check.
fn check_file(path: &Path, verify: Verify) -> Option<String> {
    match verify {
        Verify::Header => {
            let reader = match ImageReader::open(path).and_then(|r| r.with_guessed_format()) {
                Ok(r) => r,
                Err(e) => return Some(e.to_string()),
            };
            match reader.into_dimensions() {
                Ok((0, _) | (_, 0)) => Some("image has no pixels".into()),
                Ok(_) => None,
                Err(e) => Some(format!("cannot decode image: {e}")),
            }
        }
        Verify::Decode => match decode_rgb(path) {
            Ok(img) if img.width() == 0 || img.height() == 0 => Some("image has no pixels".into()),
            Ok(_) => None,
            Err(Error::Image { reason, .. }) => Some(format!("cannot decode image: {reason}")),
            Err(e) => Some(e.to_string()),
        },
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        let e = e.to_string_lossy().to_lowercase();
        IMAGE_EXTENSIONS.contains(&e.as_str())
    })
}

/// Sorted, non-hidden subdirectories of `dir`.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() && !is_hidden(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Every image file under `dir`, recursively, sorted by path (other files are ignored).
fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut here = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        here.push(entry.map_err(|e| Error::io(dir, e))?.path());
    }
    here.sort();
    for path in here {
        if is_hidden(&path) {
            continue;
        }
        if path.is_dir() {
            image_files(&path, out)?;
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Lists `split_root/<class>/**` for the given class names (missing class folders are empty).
fn list(split_root: &Path, class_names: &[String]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (label, class) in class_names.iter().enumerate() {
        let dir = split_root.join(class);
        if !dir.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        image_files(&dir, &mut files)?;
        entries.extend(files.into_iter().map(|path| Entry {
            path,
            label: label as u32,
        }));
    }
    Ok(entries)
}

/// The train and test folders when `root` has `train/` and `test/` (or `val/`).
fn explicit_split(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let train = root.join("train");
    if !train.is_dir() {
        return None;
    }
    ["test", "val"]
        .iter()
        .map(|t| root.join(t))
        .find(|t| t.is_dir())
        .map(|t| (train, t))
}

/// True if `dir` looks like an image folder: it has at least one non-hidden subdirectory.
pub fn is_image_folder(dir: &Path) -> bool {
    subdirs(dir).is_ok_and(|d| !d.is_empty())
}

/// Loads an image folder. Class names are the sorted class-folder names (of `train/` when the
/// split is given; `test/` may not add classes). Without a given split, each class is split
/// `train_fraction`/rest with [`stratified_split`] over the sorted file list — before unreadable
/// files are dropped, so a bad file never moves another file across the split.
///
/// Unreadable files are skipped and returned as warnings, or are an error if `options.strict`.
pub fn load_image_folder(root: &Path, options: &FolderOptions) -> Result<DatasetPair> {
    options.validate()?;
    let (class_dir, class_names, mut train, mut test) = match explicit_split(root) {
        Some((train_dir, test_dir)) => {
            let class_names: Vec<String> =
                subdirs(&train_dir)?.iter().map(|p| file_name(p)).collect();
            if let Some(extra) = subdirs(&test_dir)?
                .iter()
                .map(|p| file_name(p))
                .find(|n| !class_names.contains(n))
            {
                return Err(Error::not_a_dataset(
                    &test_dir,
                    format!(
                        "class folder {extra:?} has no counterpart under {}",
                        train_dir.display()
                    ),
                ));
            }
            let train = list(&train_dir, &class_names)?;
            let test = list(&test_dir, &class_names)?;
            (train_dir, class_names, train, test)
        }
        None => {
            let class_names: Vec<String> = subdirs(root)?.iter().map(|p| file_name(p)).collect();
            let all = list(root, &class_names)?;
            let labels: Vec<u32> = all.iter().map(|e| e.label).collect();
            let (tr, te) = stratified_split(&labels, options.train_fraction, options.split_seed)?;
            let pick = |idx: &[usize]| idx.iter().map(|&i| all[i].clone()).collect::<Vec<_>>();
            let (train, test) = (pick(&tr), pick(&te));
            (root.to_path_buf(), class_names, train, test)
        }
    };
    if class_names.is_empty() {
        return Err(Error::not_a_dataset(&class_dir, "no class folders"));
    }

    let mut warnings = Vec::new();
    for entries in [&mut train, &mut test] {
        let verdicts: Vec<Option<String>> = entries
            .par_iter()
            .map(|e| check_file(&e.path, options.verify))
            .collect();
        let mut kept = Vec::with_capacity(entries.len());
        for (entry, verdict) in entries.drain(..).zip(verdicts) {
            match verdict {
                None => kept.push(entry),
                Some(reason) => warnings.push(Warning {
                    path: entry.path,
                    reason,
                }),
            }
        }
        *entries = kept;
    }
    if options.strict
        && let Some(first) = warnings.first()
    {
        return Err(Error::Strict {
            count: warnings.len(),
            first: first.clone(),
        });
    }
    for (label, class) in class_names.iter().enumerate() {
        if !train.iter().any(|e| e.label == label as u32) {
            warnings.push(Warning {
                path: class_dir.join(class),
                reason: "class has no readable training images".into(),
            });
        }
    }
    if train.is_empty() || test.is_empty() {
        return Err(Error::not_a_dataset(
            root,
            format!(
                "{} readable training and {} test images; both must be non-empty",
                train.len(),
                test.len()
            ),
        ));
    }

    let base = file_name(root);
    let class_names: Arc<[String]> = class_names.into();
    let make = |split: &str, entries: Vec<Entry>| FolderDataset {
        name: format!("{base}/{split}"),
        entries: entries.into(),
        class_names: class_names.clone(),
        resize: options.resize,
        crop: options.crop,
        normalization: options.normalization.clone(),
    };
    Ok(DatasetPair {
        train: Arc::new(make("train", train)),
        test: Arc::new(make("test", test)),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_dims_keep_aspect_and_hit_target() {
        assert_eq!(resized_dims(40, 20, 10), (20, 10));
        assert_eq!(resized_dims(30, 45, 8), (8, 12));
        assert_eq!(resized_dims(8, 8, 8), (8, 8));
        // Small images are enlarged so a crop always fits.
        assert_eq!(resized_dims(3, 5, 6), (6, 10));
    }

    #[test]
    fn crop_of_resized_matches_resize_then_crop() {
        // A smooth 90×60 image; resize the shorter side to 40 (→ 60×40), crop 32.
        let img = RgbImage::from_fn(90, 60, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
        });
        let (nw, nh) = resized_dims(90, 60, 40);
        assert_eq!((nw, nh), (60, 40));
        let full = imageops::resize(&img, nw, nh, FilterType::Triangle);
        for (x0, y0) in [(0, 0), (14, 4), (28, 8)] {
            let reference = imageops::crop_imm(&full, x0, y0, 32, 32).to_image();
            let fast = crop_resized(&img, (nw, nh), (x0, y0), 32);
            assert_eq!(fast.dimensions(), (32, 32));
            // Interior pixels agree to within rounding; borders see fewer neighbours.
            for y in 2..30 {
                for x in 2..30 {
                    let (a, b) = (reference.get_pixel(x, y), fast.get_pixel(x, y));
                    for c in 0..3 {
                        let d = (i32::from(a[c]) - i32::from(b[c])).abs();
                        assert!(
                            d <= 2,
                            "({x0},{y0}) pixel ({x},{y}) channel {c}: {a:?} vs {b:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn options_are_validated() {
        let bad = FolderOptions {
            crop: 300,
            ..FolderOptions::default()
        };
        assert!(bad.validate().is_err());
        let bad = FolderOptions {
            normalization: Normalization::fashion_mnist(),
            ..FolderOptions::default()
        };
        assert!(bad.validate().is_err());
        assert!(FolderOptions::default().validate().is_ok());
    }
}
