//! Seeded batching: the same seed and epoch give the same batches; epochs differ; batches hold
//! exactly what `Dataset::get` returns.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

mod common;

use std::sync::Arc;

use bottlenet_data::{
    Augment, BatchOptions, Batcher, Dataset, MemoryDataset, Normalization, TrainTransform,
};

/// 23 single-channel 2×2 images; image i is filled with i, label i mod 4.
fn dataset() -> Arc<dyn Dataset> {
    let images: Vec<u8> = (0..23u8).flat_map(|i| [i; 4]).collect();
    let labels = (0..23).map(|i| i % 4).collect();
    let names = (0..4).map(|i| format!("c{i}")).collect();
    Arc::new(
        MemoryDataset::new(
            "toy",
            [1, 2, 2],
            images,
            labels,
            names,
            Normalization::identity(1),
        )
        .unwrap()
        .with_transform(TrainTransform::PadCrop {
            pad: 1,
            hflip: true,
        }),
    )
}

fn orders(batcher: &Batcher, epoch: u64) -> Vec<Vec<usize>> {
    batcher.epoch(epoch).map(|b| b.unwrap().indices).collect()
}

#[test]
fn order_is_deterministic_per_seed_and_differs_across_epochs() {
    let d = dataset();
    let a = Batcher::new(d.clone(), BatchOptions::train(5, 42)).unwrap();
    let b = Batcher::new(d.clone(), BatchOptions::train(5, 42)).unwrap();
    assert_eq!(a.num_batches(), 4); // 23 / 5, last partial batch dropped
    assert_eq!(orders(&a, 0), orders(&b, 0));
    assert_eq!(orders(&a, 3), orders(&b, 3));
    assert_ne!(orders(&a, 0), orders(&a, 1));
    let c = Batcher::new(d, BatchOptions::train(5, 43)).unwrap();
    assert_ne!(orders(&a, 0), orders(&c, 0));
    // Each epoch's order is a permutation of all indices.
    let mut all = a.order(7);
    all.sort_unstable();
    assert_eq!(all, (0..23).collect::<Vec<_>>());
}

#[test]
fn batches_hold_the_samples_get_returns() {
    let d = dataset();
    let batcher = Batcher::new(d.clone(), BatchOptions::train(4, 9)).unwrap();
    for batch in batcher.epoch(2) {
        let batch = batch.unwrap();
        assert_eq!(batch.shape, [4, 1, 2, 2]);
        for (k, &i) in batch.indices.iter().enumerate() {
            let s = d.get(i, Augment::Train { seed: 9, epoch: 2 }).unwrap();
            assert_eq!(batch.labels[k], s.label);
            assert_eq!(&batch.pixels[k * 4..(k + 1) * 4], &s.pixels[..]);
        }
    }
}

#[test]
fn resumed_epoch_sees_the_same_batches() {
    let batcher = Batcher::new(dataset(), BatchOptions::train(3, 5)).unwrap();
    let full: Vec<_> = batcher.epoch(4).map(|b| b.unwrap()).collect();
    let resumed: Vec<_> = batcher.epoch_from(4, 2).map(|b| b.unwrap()).collect();
    assert_eq!(&full[2..], &resumed[..]);
    assert_eq!(batcher.batch(4, 5).unwrap(), full[5]);
    let mut it = batcher.epoch(4);
    assert_eq!(it.len(), full.len());
    assert_eq!(it.nth(3).unwrap().unwrap(), full[3]);
    assert!(batcher.batch(4, full.len()).is_err());
}

#[test]
fn eval_batches_are_in_order_unaugmented_and_complete() {
    let d = dataset();
    let batcher = Batcher::new(d, BatchOptions::eval(10)).unwrap();
    let batches: Vec<_> = batcher.epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [10, 10, 3]
    );
    assert_eq!(batches[2].indices, [20, 21, 22]);
    assert_eq!(batches[2].shape, [3, 1, 2, 2]);
    // Unaugmented: image 21 is all 21/255.
    assert!(
        batches[2].pixels[4..8]
            .iter()
            .all(|&v| (v - 21.0 / 255.0).abs() < 1e-6)
    );
    assert_eq!(orders(&batcher, 0), orders(&batcher, 1));
}

#[test]
fn zero_batch_size_is_rejected() {
    assert!(Batcher::new(dataset(), BatchOptions::eval(0)).is_err());
}
