//! `infer --save-frames DIR`: a [`PhoneHalf`] that writes every payload the phone makes for the
//! server — a wire frame per split request, the input JPEG per cloud-only request — to a folder,
//! byte for byte as sent. Frames from two machines (an ARM phone and an x86 one) can then be
//! compared directly; DESIGN §4 asks that they be bit-identical.
//!
//! Files are numbered in the order the payloads were made, `000000-RB1.bnf`, `000001-RB1.bnf`, …
//! (`-cloud-only.jpg` for input photos). `infer` sends one image at a time, so with a fixed split
//! file `n` is the `n`-th image; mobile-only answers send nothing and write nothing.

use bottlenet_runtime::{Error, Image, PhoneHalf, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Wraps a phone half; every payload it returns was first written to `dir`.
#[derive(Debug)]
pub struct SavingPhone<P> {
    inner: P,
    dir: PathBuf,
    next: AtomicUsize,
}

impl<P: PhoneHalf> SavingPhone<P> {
    /// Creates `dir` (and its parents) now, so a folder that cannot be written ends the run
    /// before any image is sent.
    pub fn new(inner: P, dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { inner, dir: dir.to_path_buf(), next: AtomicUsize::new(0) })
    }

    /// Writes `payload` as the next file, named after its path; a failed write fails the request
    /// (the client then ends the run with that error rather than answering on the phone).
    fn save(&self, path_name: &str, extension: &str, payload: Vec<u8>) -> Result<Vec<u8>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Split names come from the bundle's manifest; anything but [A-Za-z0-9-] stays out of a file name.
        let name: String = path_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let file = self.dir.join(format!("{n:06}-{name}.{extension}"));
        std::fs::write(&file, &payload).map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("--save-frames: writing {}: {e}", file.display()))))?;
        Ok(payload)
    }
}

impl<P: PhoneHalf> PhoneHalf for SavingPhone<P> {
    fn model_name(&self) -> &str {
        self.inner.model_name()
    }

    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }

    fn splits(&self) -> Vec<String> {
        self.inner.splits()
    }

    fn encode(&self, split: &str, image: &Image) -> Result<Vec<u8>> {
        let frame = self.inner.encode(split, image)?;
        self.save(split, "bnf", frame)
    }

    fn full(&self, image: &Image) -> Result<Vec<f32>> {
        self.inner.full(image)
    }

    fn jpeg_input(&self, image: &Image, quality: u8) -> Result<Vec<u8>> {
        let jpeg = self.inner.jpeg_input(image, quality)?;
        self.save(bottlenet_runtime::CLOUD_ONLY, "jpg", jpeg)
    }
}
