//! Image folders from generated PNG/JPEG files, including unreadable ones.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bottlenet_data::{
    Augment, Dataset, DatasetFormat, DatasetPair, Error, FolderOptions, Verify, detect_format,
    load_image_folder,
};
use common::solid;

fn small() -> FolderOptions {
    FolderOptions {
        resize: 12,
        crop: 8,
        ..FolderOptions::default()
    }
}

/// `root/<class>/img<i>.png` for classes a, b, c with 20, 20 and 7 images of varied sizes.
fn make_folder(root: &Path) {
    for (k, (class, n)) in [("a", 20), ("b", 20), ("c", 7)].into_iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let img = solid(16 + i, 12 + 2 * k as u32, [40 * k as u8, i as u8 * 10, 99]);
            img.save(dir.join(format!("img{i:02}.png"))).unwrap();
        }
    }
    // Ignored: not an image extension, hidden.
    std::fs::write(root.join("a/notes.txt"), "hello").unwrap();
    std::fs::write(root.join("a/.hidden.png"), "junk").unwrap();
}

fn all_paths(pair: &DatasetPair) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let paths = |d: &Arc<dyn Dataset>| {
        (0..d.len())
            .map(|i| d.path(i).unwrap().to_path_buf())
            .collect::<BTreeSet<_>>()
    };
    (paths(&pair.train), paths(&pair.test))
}

#[test]
fn split_is_85_15_per_class_deterministic_and_disjoint() {
    let root = tempfile::tempdir().unwrap();
    make_folder(root.path());
    assert_eq!(
        detect_format(root.path()).unwrap(),
        DatasetFormat::ImageFolder
    );
    let pair = load_image_folder(root.path(), &small()).unwrap();
    assert!(pair.warnings.is_empty(), "{:?}", pair.warnings);
    assert_eq!(pair.train.class_names(), ["a", "b", "c"]);
    assert_eq!(pair.train.input_shape(), [3, 8, 8]);
    // round(0.85·20) = 17, round(0.85·7) = 6.
    let count =
        |d: &Arc<dyn Dataset>, c| (0..d.len()).filter(|&i| d.label(i).unwrap() == c).count();
    assert_eq!([0, 1, 2].map(|c| count(&pair.train, c)), [17, 17, 6]);
    assert_eq!([0, 1, 2].map(|c| count(&pair.test, c)), [3, 3, 1]);

    let (train, test) = all_paths(&pair);
    assert_eq!(train.len() + test.len(), 47);
    assert!(train.is_disjoint(&test));
    let again = load_image_folder(root.path(), &small()).unwrap();
    assert_eq!(all_paths(&again), (train.clone(), test.clone()));
    let other_seed = FolderOptions {
        split_seed: 1,
        ..small()
    };
    let other = load_image_folder(root.path(), &other_seed).unwrap();
    assert_ne!(all_paths(&other).1, test);
}

#[test]
fn corrupt_file_is_skipped_and_reported_unless_strict() {
    let root = tempfile::tempdir().unwrap();
    make_folder(root.path());
    let bad = root.path().join("b/broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n definitely not a png").unwrap();
    let bad_jpg = root.path().join("c/broken.JPG");
    std::fs::write(&bad_jpg, b"random bytes").unwrap();

    let pair = load_image_folder(root.path(), &small()).unwrap();
    let warned: Vec<&Path> = pair.warnings.iter().map(|w| w.path.as_path()).collect();
    assert_eq!(warned, [bad.as_path(), bad_jpg.as_path()]);
    assert!(pair.warnings[0].to_string().contains("broken.png"));
    assert_eq!(pair.train.len() + pair.test.len(), 47);

    let strict = FolderOptions {
        strict: true,
        ..small()
    };
    match load_image_folder(root.path(), &strict) {
        Err(Error::Strict { count, first }) => {
            assert_eq!(count, 2);
            assert_eq!(first.path, bad);
        }
        other => panic!("expected a strict error, got {other:?}"),
    }
}

#[test]
fn truncated_body_is_caught_by_full_verification_or_at_read_time() {
    let root = tempfile::tempdir().unwrap();
    make_folder(root.path());
    // A valid header with its pixel data cut off a few bytes into the first IDAT chunk.
    let good = root.path().join("a/img00.png");
    let bytes = std::fs::read(&good).unwrap();
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    for class in ["a", "b", "c"] {
        let cut = &bytes[..idat + 4 + 6];
        std::fs::write(root.path().join(class).join("zz-cut.png"), cut).unwrap();
    }

    let header = load_image_folder(root.path(), &small()).unwrap();
    let decode = load_image_folder(
        root.path(),
        &FolderOptions {
            verify: Verify::Decode,
            ..small()
        },
    )
    .unwrap();
    assert!(header.warnings.is_empty(), "{:?}", header.warnings);
    assert_eq!(decode.warnings.len(), 3);
    assert!(
        decode
            .warnings
            .iter()
            .all(|w| w.path.ends_with("zz-cut.png"))
    );

    // With header checks only, reading the cut file is an error naming it; others still read.
    let mut errors = 0;
    for d in [&header.train, &header.test] {
        for i in 0..d.len() {
            match d.get(i, Augment::Eval) {
                Ok(s) => assert_eq!(s.pixels.len(), 3 * 8 * 8),
                Err(e) => {
                    assert!(e.to_string().contains("zz-cut.png"), "{e}");
                    errors += 1;
                }
            }
        }
    }
    assert_eq!(errors, 3);
}

#[test]
fn random_crop_is_seeded_and_eval_takes_the_centre() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("only");
    std::fs::create_dir_all(&dir).unwrap();
    // A 12×12 gradient (shorter side already `resize`): crops are plain windows.
    for i in 0..4u8 {
        let img =
            image::RgbImage::from_fn(12, 12, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, i]));
        img.save(dir.join(format!("g{i}.png"))).unwrap();
    }
    let pair = load_image_folder(root.path(), &small()).unwrap();
    let d = &pair.train;
    let eval = d.raw(0, Augment::Eval).unwrap().image;
    assert_eq!((eval.width, eval.height, eval.channels), (8, 8, 3));
    // Centre crop of 12 → 8 starts at (2, 2).
    assert_eq!(&eval.pixels[..3], &[40, 40, eval.pixels[2]]);
    let train = |seed, epoch| d.raw(0, Augment::Train { seed, epoch }).unwrap().image;
    assert_eq!(train(3, 1), train(3, 1));
    // 25 possible offsets: across a few epochs the crop moves.
    let origins: BTreeSet<(u8, u8)> = (0..10)
        .map(|e| {
            let p = train(3, e).pixels;
            (p[0], p[1])
        })
        .collect();
    assert!(origins.len() > 1, "{origins:?}");
    for (x, y) in origins {
        assert!(x <= 80 && y <= 80 && x % 20 == 0 && y % 20 == 0);
    }
}

#[test]
fn jpeg_files_and_resizing() {
    let root = tempfile::tempdir().unwrap();
    for class in ["x", "y"] {
        let dir = root.path().join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3 {
            solid(30 + i * 7, 20, [200, 10, 10])
                .save(dir.join(format!("p{i}.jpeg")))
                .unwrap();
        }
    }
    let pair = load_image_folder(root.path(), &small()).unwrap();
    assert!(pair.warnings.is_empty(), "{:?}", pair.warnings);
    let s = pair.test.raw(0, Augment::Eval).unwrap().image;
    assert_eq!((s.width, s.height), (8, 8));
    // Lossy, but the centre of a solid red image stays red.
    let c = (4 * 8 + 4) * 3;
    assert!(
        s.pixels[c] > 170 && s.pixels[c + 1] < 50,
        "{:?}",
        &s.pixels[c..c + 3]
    );
}

#[test]
fn given_train_and_val_folders_are_used_as_the_split() {
    let root = tempfile::tempdir().unwrap();
    for (split, n) in [("train", 4), ("val", 2)] {
        for class in ["cat", "dog"] {
            let dir = root.path().join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                solid(10, 10, [i as u8, 0, 0])
                    .save(dir.join(format!("{i}.png")))
                    .unwrap();
            }
        }
    }
    let pair = load_image_folder(root.path(), &small()).unwrap();
    assert_eq!(pair.train.len(), 8);
    assert_eq!(pair.test.len(), 4);
    assert_eq!(pair.test.class_names(), ["cat", "dog"]);
    // A test class that training lacks is an error naming it.
    std::fs::create_dir_all(root.path().join("val/emu")).unwrap();
    let e = load_image_folder(root.path(), &small())
        .unwrap_err()
        .to_string();
    assert!(e.contains("emu"), "{e}");
}
