//! The deterministic per-class train/test split used where a dataset has none (paper §3.1:
//! 85 % of miniImageNet's examples for training, the rest for testing).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::rng::{Purpose, stream};

/// The paper's training share (§3.1).
pub const PAPER_TRAIN_FRACTION: f64 = 0.85;

/// Splits sample indices `0..labels.len()` into `(train, test)`, class by class.
///
/// Each class's indices are shuffled with a stream keyed by `(seed, class)` and the first
/// `round(train_fraction · n)` go to training; a class of two or more samples always puts at
/// least one on each side. Both lists are returned sorted. The result depends only on
/// `labels`, `train_fraction` and `seed`: the halves are disjoint and together cover every index.
pub fn stratified_split(
    labels: &[u32],
    train_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(Error::InvalidOption(format!(
            "train fraction must be strictly between 0 and 1, got {train_fraction}"
        )));
    }
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (class, mut indices) in by_class {
        indices.shuffle(&mut stream(Purpose::Split, seed, u64::from(class), 0));
        let n = indices.len();
        let mut n_train = (train_fraction * n as f64).round() as usize;
        if n >= 2 {
            n_train = n_train.clamp(1, n - 1);
        }
        train.extend_from_slice(&indices[..n_train]);
        test.extend_from_slice(&indices[n_train..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_complete_stratified_and_seeded() {
        // 3 classes of 100, 40 and 7 samples, interleaved.
        let labels: Vec<u32> = (0..147u32)
            .map(|i| {
                if i < 100 {
                    0
                } else if i < 140 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let (train, test) = stratified_split(&labels, PAPER_TRAIN_FRACTION, 7).unwrap();
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..147).collect::<Vec<_>>(), "disjoint and complete");
        let count = |set: &[usize], c| set.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((count(&train, 0), count(&test, 0)), (85, 15));
        assert_eq!((count(&train, 1), count(&test, 1)), (34, 6));
        assert_eq!((count(&train, 2), count(&test, 2)), (6, 1));
        assert_eq!(
            stratified_split(&labels, 0.85, 7).unwrap(),
            (train.clone(), test.clone())
        );
        assert_ne!(stratified_split(&labels, 0.85, 8).unwrap().0, train);
    }

    #[test]
    fn small_classes_keep_a_test_sample() {
        let (train, test) = stratified_split(&[0, 0], 0.85, 0).unwrap();
        assert_eq!((train.len(), test.len()), (1, 1));
        let (train, test) = stratified_split(&[3], 0.85, 0).unwrap();
        assert_eq!((train, test), (vec![0], vec![]));
    }

    #[test]
    fn rejects_bad_fractions() {
        for f in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(stratified_split(&[0, 1], f, 0).is_err());
        }
    }
}
