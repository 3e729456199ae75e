//! Finding the dataset to use: an explicit path (format auto-detected), else the full
//! Fashion-MNIST installed by Debian's `dataset-fashion-mnist`, else the embedded subset.
//! Nothing is ever downloaded (DESIGN §6).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::cifar::{find_cifar10_dir, load_cifar10_dir};
use crate::dataset::DatasetPair;
use crate::error::{Error, Result};
use crate::folder::{FolderOptions, is_image_folder, load_image_folder};
use crate::idx::{IdxFiles, load_idx_dir};

/// Where Debian's `dataset-fashion-mnist` package installs the full set (IDX, gzip).
pub const SYSTEM_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Training and test images in the embedded subset (see `data/README.md`).
pub const EMBEDDED_TRAIN_LEN: usize = 10_000;
pub const EMBEDDED_TEST_LEN: usize = 2_000;

/// The on-disk layouts this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetFormat {
    /// `train-images-idx3-ubyte[.gz]` and friends (MNIST, Fashion-MNIST).
    Idx,
    /// `data_batch_{1..5}.bin`, `test_batch.bin`.
    Cifar10,
    /// `root/<class>/*.{jpg,jpeg,png}` (miniImageNet/ImageNet).
    ImageFolder,
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetFormat::Idx => "IDX",
            DatasetFormat::Cifar10 => "CIFAR-10 binary",
            DatasetFormat::ImageFolder => "image folder",
        })
    }
}

/// Which dataset [`resolve`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The path given with `--data`.
    Explicit {
        path: PathBuf,
        format: DatasetFormat,
    },
    /// The full Fashion-MNIST set installed on the system.
    System { path: PathBuf },
    /// The Fashion-MNIST subset compiled into this library.
    Embedded,
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Explicit { path, format } => {
                write!(f, "{} ({format}, given explicitly)", path.display())
            }
            DataSource::System { path } => {
                write!(f, "full Fashion-MNIST at {}", path.display())
            }
            DataSource::Embedded => write!(
                f,
                "embedded Fashion-MNIST subset ({EMBEDDED_TRAIN_LEN} train / {EMBEDDED_TEST_LEN} test images)"
            ),
        }
    }
}

/// Which layout `path` holds: IDX files, CIFAR-10 batches (in `path` or its
/// `cifar-10-batches-bin/`), or class folders — checked in that order.
pub fn detect_format(path: &Path) -> Result<DatasetFormat> {
    if !path.is_dir() {
        let why = if path.exists() {
            "not a directory"
        } else {
            "does not exist"
        };
        return Err(Error::not_a_dataset(path, why));
    }
    if IdxFiles::find(path).is_some() {
        Ok(DatasetFormat::Idx)
    } else if find_cifar10_dir(path).is_some() {
        Ok(DatasetFormat::Cifar10)
    } else if is_image_folder(path) {
        Ok(DatasetFormat::ImageFolder)
    } else {
        Err(Error::not_a_dataset(
            path,
            "found no IDX files (train-images-idx3-ubyte[.gz]), no CIFAR-10 batches \
             (data_batch_1.bin) and no class folders",
        ))
    }
}

/// Opens the dataset at `path` in whatever layout it has; `folder` applies to image folders.
pub fn open(path: &Path, folder: &FolderOptions) -> Result<(DatasetPair, DatasetFormat)> {
    let format = detect_format(path)?;
    let pair = match format {
        DatasetFormat::Idx => load_idx_dir(path)?,
        DatasetFormat::Cifar10 => load_cifar10_dir(path)?,
        DatasetFormat::ImageFolder => load_image_folder(path, folder)?,
    };
    Ok((pair, format))
}

/// The default dataset: `explicit` if given, else the system Fashion-MNIST, else the embedded
/// subset. Image folders are read with [`FolderOptions::default`].
pub fn resolve_default(explicit: Option<&Path>) -> Result<(DatasetPair, DataSource)> {
    resolve(
        explicit,
        Some(Path::new(SYSTEM_FASHION_MNIST_DIR)),
        &FolderOptions::default(),
    )
}

/// [`resolve_default`] with the system directory and folder options spelt out (`system: None`
/// skips the system set). A system directory that holds IDX files but fails to load is an
/// error, not a silent fall-back.
pub fn resolve(
    explicit: Option<&Path>,
    system: Option<&Path>,
    folder: &FolderOptions,
) -> Result<(DatasetPair, DataSource)> {
    if let Some(path) = explicit {
        let (pair, format) = open(path, folder)?;
        return Ok((
            pair,
            DataSource::Explicit {
                path: path.to_path_buf(),
                format,
            },
        ));
    }
    if let Some(dir) = system
        && IdxFiles::find(dir).is_some()
    {
        let pair = load_idx_dir(dir)?;
        return Ok((
            pair,
            DataSource::System {
                path: dir.to_path_buf(),
            },
        ));
    }
    Ok((embedded_subset()?, DataSource::Embedded))
}

/// The Fashion-MNIST subset compiled into the library (`data/fashion-mnist-subset/`, via
/// `include_bytes!`, so it works from any directory).
#[cfg(feature = "embedded")]
pub fn embedded_subset() -> Result<DatasetPair> {
    use crate::idx::{IdxMeta, load_idx_parts};
    macro_rules! subset_file {
        ($name:literal) => {
            (
                &include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../data/fashion-mnist-subset/",
                    $name
                ))[..],
                Path::new(concat!("<embedded>/fashion-mnist-subset/", $name)),
            )
        };
    }
    let mut meta = IdxMeta::fashion_mnist();
    meta.name = "fashion-mnist-subset".into();
    load_idx_parts(
        [
            subset_file!("train-images-idx3-ubyte.gz"),
            subset_file!("train-labels-idx1-ubyte.gz"),
            subset_file!("t10k-images-idx3-ubyte.gz"),
            subset_file!("t10k-labels-idx1-ubyte.gz"),
        ],
        &meta,
    )
}

/// Without the `embedded` feature there is no built-in dataset.
#[cfg(not(feature = "embedded"))]
pub fn embedded_subset() -> Result<DatasetPair> {
    Err(Error::NoDataset(format!(
        "no --data path given, {SYSTEM_FASHION_MNIST_DIR} is absent \
         (apt-get install dataset-fashion-mnist), and this build has no embedded subset \
         (feature `embedded` off)"
    )))
}
