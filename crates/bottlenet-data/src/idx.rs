//! IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed.
//!
//! Format: 2 zero bytes, a type byte (only `0x08`, unsigned byte, is used by these datasets),
//! a dimension count, then one big-endian `u32` per dimension and the data, row-major.
//! Images are `idx3` (`count × rows × cols`), labels `idx1` (`count`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::dataset::{DatasetPair, Normalization};
use crate::error::{Error, Result};
use crate::memory::MemoryDataset;

const FORMAT: &str = "IDX";
const TYPE_U8: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Class names of Fashion-MNIST (Zalando Research), indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// An unsigned-byte IDX array: its dimensions and row-major data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file; gzip is detected from the content (magic `1f 8b`), not the file name.
/// Every error names `path`.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_idx(&bytes, path)
}

/// Parses IDX `bytes` (plain or gzip) read from `path` (used in error messages only).
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let plain;
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, FORMAT, format!("corrupt gzip stream: {e}")))?;
        plain = out;
        &plain[..]
    } else {
        bytes
    };
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            FORMAT,
            format!(
                "{} bytes, too short for the 4-byte magic number",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(
            path,
            FORMAT,
            format!(
                "bad magic number {:02x?} (must start with two zero bytes)",
                &bytes[..4]
            ),
        ));
    }
    if bytes[2] != TYPE_U8 {
        return Err(Error::format(
            path,
            FORMAT,
            format!(
                "data type {:#04x} is not supported (only 0x08, unsigned byte)",
                bytes[2]
            ),
        ));
    }
    let ndim = usize::from(bytes[3]);
    if ndim == 0 {
        return Err(Error::format(path, FORMAT, "zero dimensions"));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            FORMAT,
            format!(
                "{} bytes, too short for a header of {ndim} dimensions",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let body = bytes.len() - header;
    match expected {
        Some(n) if n == body => {}
        Some(n) => {
            return Err(Error::format(
                path,
                FORMAT,
                format!(
                    "dimensions {dims:?} need {n} data bytes but the file holds {body} ({})",
                    if body < n {
                        "truncated"
                    } else {
                        "trailing bytes"
                    }
                ),
            ));
        }
        None => {
            return Err(Error::format(
                path,
                FORMAT,
                format!("dimensions {dims:?} overflow"),
            ));
        }
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Writes an unsigned-byte IDX file, gzip-compressed if `gzip`. Used to make fixtures and subsets.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if dims.is_empty() || dims.len() > 255 || n != Some(data.len()) {
        return Err(Error::InvalidOption(format!(
            "IDX dimensions {dims:?} do not match {} data bytes",
            data.len()
        )));
    }
    let mut bytes = vec![0, 0, TYPE_U8, dims.len() as u8];
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| Error::InvalidOption(format!("IDX dimension {d} exceeds u32")))?;
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gzip {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&bytes).map_err(|e| Error::io(path, e))?;
        bytes = enc.finish().map_err(|e| Error::io(path, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The four files of an IDX dataset directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxFiles {
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

impl IdxFiles {
    /// Finds `{train,t10k}-{images-idx3,labels-idx1}-ubyte` in `dir`, with or without `.gz`
    /// (also the `train-images.idx3-ubyte` spelling). `None` if the training images are absent.
    pub fn find(dir: &Path) -> Option<Result<Self>> {
        let train_images = find_file(dir, "train", "images", "idx3")?;
        let get = |split, kind, idx| {
            find_file(dir, split, kind, idx).ok_or_else(|| {
                Error::not_a_dataset(
                    dir,
                    format!("IDX directory lacks {split}-{kind}-{idx}-ubyte[.gz]"),
                )
            })
        };
        Some((|| {
            Ok(Self {
                train_images,
                train_labels: get("train", "labels", "idx1")?,
                test_images: get("t10k", "images", "idx3")?,
                test_labels: get("t10k", "labels", "idx1")?,
            })
        })())
    }
}

fn find_file(dir: &Path, split: &str, kind: &str, idx: &str) -> Option<PathBuf> {
    [
        format!("{split}-{kind}-{idx}-ubyte"),
        format!("{split}-{kind}.{idx}-ubyte"),
    ]
    .iter()
    .flat_map(|stem| [format!("{stem}.gz"), stem.clone()])
    .map(|name| dir.join(name))
    .find(|p| p.is_file())
}

/// What an IDX dataset is called and how it is labelled and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxMeta {
    /// Prefix of the dataset names (`<name>/train`, `<name>/test`).
    pub name: String,
    pub class_names: Vec<String>,
    /// `None`: measured on the training images.
    pub normalization: Option<Normalization>,
}

impl IdxMeta {
    /// Fashion-MNIST: its ten class names and its mean/std (0.2860/0.3530).
    pub fn fashion_mnist() -> Self {
        Self {
            name: "fashion-mnist".into(),
            class_names: FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            normalization: Some(Normalization::fashion_mnist()),
        }
    }

    /// What a directory holds, judged from its contents and name: a path mentioning "fashion"
    /// is Fashion-MNIST; one mentioning "mnist" is MNIST (ten digits, 0.1307/0.3081); anything
    /// else has `num_labels` classes named by number and statistics measured on the training
    /// images. A `classes.txt` (one name per line) in the directory overrides the names.
    /// `num_labels` is one more than the largest label in the files.
    fn detect(dir: &Path, num_labels: usize) -> Result<Self> {
        let lower = dir.to_string_lossy().to_lowercase();
        let numbered = |n: usize| (0..n).map(|i| i.to_string()).collect();
        let mut meta = if lower.contains("fashion") {
            Self::fashion_mnist()
        } else if lower.contains("mnist") {
            Self {
                name: "mnist".into(),
                class_names: numbered(10),
                normalization: Some(Normalization::mnist()),
            }
        } else {
            Self {
                name: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "idx".into()),
                class_names: numbered(num_labels),
                normalization: None,
            }
        };
        let classes = dir.join("classes.txt");
        if classes.is_file() {
            meta.class_names = read_class_names(&classes)?;
        }
        Ok(meta)
    }
}

/// Non-empty lines of a class-name file, trimmed.
pub(crate) fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(Error::format(path, "class-name", "no class names"));
    }
    Ok(names)
}

/// Loads an IDX directory (see [`IdxFiles::find`]); names and statistics per [`IdxMeta`].
pub fn load_idx_dir(dir: &Path) -> Result<DatasetPair> {
    let files = IdxFiles::find(dir).unwrap_or_else(|| {
        Err(Error::not_a_dataset(
            dir,
            "no train-images-idx3-ubyte[.gz] (IDX directory expected)",
        ))
    })?;
    let read = |p: &PathBuf| -> Result<(Vec<u8>, PathBuf)> {
        let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
        Ok((bytes, p.clone()))
    };
    let parts = [
        read(&files.train_images)?,
        read(&files.train_labels)?,
        read(&files.test_images)?,
        read(&files.test_labels)?,
    ];
    let [ti, tl, vi, vl] = parts
        .each_ref()
        .map(|(bytes, path)| (bytes.as_slice(), path.as_path()));
    let max_label = [tl, vl]
        .iter()
        .map(|(b, p)| parse_idx(b, p))
        .collect::<Result<Vec<_>>>()?
        .iter()
        .flat_map(|a| a.data.iter().copied())
        .max()
        .map_or(0, usize::from);
    let meta = IdxMeta::detect(dir, max_label + 1)?;
    load_idx_parts([ti, tl, vi, vl], &meta)
}

/// Builds the train/test pair from the four IDX files' bytes (plain or gzip), each given with
/// the path it is reported under: `[train images, train labels, test images, test labels]`.
pub fn load_idx_parts(parts: [(&[u8], &Path); 4], meta: &IdxMeta) -> Result<DatasetPair> {
    let [ti, tl, vi, vl] = parts;
    let (train_images, shape, train_labels) = images_and_labels(ti, tl, meta)?;
    let (test_images, test_shape, test_labels) = images_and_labels(vi, vl, meta)?;
    if test_shape != shape {
        return Err(Error::format(
            vi.1,
            FORMAT,
            format!("test images are {test_shape:?} but training images are {shape:?}"),
        ));
    }
    let normalization = match &meta.normalization {
        Some(n) => n.clone(),
        None => Normalization::measure(&train_images, 1)?,
    };
    let make = |split: &str, images, labels| {
        MemoryDataset::new(
            format!("{}/{split}", meta.name),
            shape,
            images,
            labels,
            meta.class_names.clone(),
            normalization.clone(),
        )
    };
    Ok(DatasetPair {
        train: std::sync::Arc::new(make("train", train_images, train_labels)?),
        test: std::sync::Arc::new(make("test", test_images, test_labels)?),
        warnings: Vec::new(),
    })
}

/// Parses one images file and its labels file and checks they agree.
fn images_and_labels(
    (image_bytes, image_path): (&[u8], &Path),
    (label_bytes, label_path): (&[u8], &Path),
    meta: &IdxMeta,
) -> Result<(Vec<u8>, [usize; 3], Vec<u32>)> {
    let images = parse_idx(image_bytes, image_path)?;
    let labels = parse_idx(label_bytes, label_path)?;
    let &[count, rows, cols] = images.dims.as_slice() else {
        return Err(Error::format(
            image_path,
            FORMAT,
            format!(
                "images need 3 dimensions (count, rows, cols), found {:?}",
                images.dims
            ),
        ));
    };
    if rows == 0 || cols == 0 {
        return Err(Error::format(
            image_path,
            FORMAT,
            format!("empty images {rows}x{cols}"),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(Error::format(
            label_path,
            FORMAT,
            format!("labels need 1 dimension, found {:?}", labels.dims),
        ));
    }
    if labels.dims[0] != count {
        return Err(Error::format(
            label_path,
            FORMAT,
            format!(
                "{} labels for {count} images in {}",
                labels.dims[0],
                image_path.display()
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= meta.class_names.len())
    {
        return Err(Error::format(
            label_path,
            FORMAT,
            format!(
                "label {l} at position {i} is not below the {} classes",
                meta.class_names.len()
            ),
        ));
    }
    let labels = labels.data.iter().map(|&l| u32::from(l)).collect();
    Ok((images.data, [1, rows, cols], labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_bad_headers_naming_the_path() {
        let p = Path::new("/some/where/x-idx3-ubyte");
        let cases: [&[u8]; 5] = [
            &[0, 0],                         // too short
            &[1, 0, 8, 1, 0, 0, 0, 0],       // bad magic
            &[0, 0, 0x0d, 1, 0, 0, 0, 0],    // float data
            &[0, 0, 8, 2, 0, 0, 0, 1],       // header cut short
            &[0, 0, 8, 1, 0, 0, 0, 3, 1, 2], // truncated body
        ];
        for bytes in cases {
            let e = parse_idx(bytes, p).unwrap_err();
            assert!(e.to_string().contains("/some/where/x-idx3-ubyte"), "{e}");
        }
        let e = parse_idx(&[0, 0, 8, 1, 0, 0, 0, 1, 5, 6], p).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn parse_reads_dims_and_data() {
        let a = parse_idx(&[0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 1, 7, 9], Path::new("x")).unwrap();
        assert_eq!(a.dims, vec![2, 1]);
        assert_eq!(a.data, vec![7, 9]);
    }
}
