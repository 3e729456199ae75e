//! Writes an RGB image folder (`OUT/train/<class>/*.png`, `OUT/test/<class>/*.png`) from a
//! grayscale dataset: each image's one channel replicated to three and padded with its
//! background to `--side` pixels (Fashion-MNIST 28×28 → 32×32). It stands for a user's own
//! photo folder in the colour end-to-end runs (the paper's setting is RGB).
//!
//! ```sh
//! cargo run --release -p bottlenet-data --example rgb_folder -- --out runs/fashion-rgb32 [--data DIR] [--side 32] [--train 10000] [--test 2000]
//! ```

use bottlenet_data::{Augment, Dataset, resolve_default};
use std::path::{Path, PathBuf};

struct Args {
    out: PathBuf,
    data: Option<PathBuf>,
    side: usize,
    train: usize,
    test: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args { out: PathBuf::new(), data: None, side: 32, train: usize::MAX, test: usize::MAX };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value()?),
            "--data" => args.data = Some(PathBuf::from(value()?)),
            "--side" => args.side = number(value()?)?,
            "--train" => args.train = number(value()?)?,
            "--test" => args.test = number(value()?)?,
            other => return Err(format!("unknown flag {other}; see the file's doc comment")),
        }
    }
    if args.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    Ok(args)
}

/// Writes `count` samples of `set` as padded RGB PNGs under `dir/<class>/`.
fn write(set: &dyn Dataset, dir: &Path, count: usize, side: usize) -> Result<usize, String> {
    let [channels, height, width] = set.input_shape();
    if channels != 1 || height > side || width > side {
        return Err(format!("needs grayscale images no larger than {side}×{side}; got {channels}×{height}×{width}"));
    }
    let (top, left) = ((side - height) / 2, (side - width) / 2);
    let n = count.min(set.len());
    for index in 0..n {
        let sample = set.raw(index, Augment::Eval).map_err(|e| e.to_string())?;
        let class = &set.class_names()[sample.label as usize];
        let class_dir = dir.join(class.replace(['/', ' '], "_"));
        std::fs::create_dir_all(&class_dir).map_err(|e| format!("creating {}: {e}", class_dir.display()))?;
        let image = image::RgbImage::from_fn(side as u32, side as u32, |x, y| {
            let (x, y) = (x as usize, y as usize);
            let inside = (top..top + height).contains(&y) && (left..left + width).contains(&x);
            let v = if inside { sample.image.pixels[(y - top) * width + (x - left)] } else { 0 };
            image::Rgb([v, v, v])
        });
        let path = class_dir.join(format!("{index:05}.png"));
        image.save(&path).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(n)
}

fn main() {
    let run = || -> Result<(), String> {
        let args = parse()?;
        let (pair, source) = resolve_default(args.data.as_deref()).map_err(|e| e.to_string())?;
        if args.out.exists() {
            return Err(format!("{} already exists; pass a new folder", args.out.display()));
        }
        let train = write(&*pair.train, &args.out.join("train"), args.train, args.side)?;
        let test = write(&*pair.test, &args.out.join("test"), args.test, args.side)?;
        println!("{source}: wrote {train} train and {test} test RGB {0}×{0} PNGs to {1}", args.side, args.out.display());
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
