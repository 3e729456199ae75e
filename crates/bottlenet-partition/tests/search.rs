//! The training-phase bookkeeping of Algorithm 1 (paper §2.3, lines 18–30) end to end, with a
//! deterministic stand-in for training: sharded runs merge to the same choice as one unsharded
//! run, a restarted shard skips what it finished, torn last lines are survived, and shards
//! always partition the grid.

#![allow(clippy::unwrap_used)] // a panic in a test is a failure report

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bottlenet_partition::{
    CloudOnlyResult, Measurement, SearchConfig, SearchMode, SearchRecord, SearchSpec, Shard,
    append_record, finished_ids, finished_ids_in, merge, read_records, record_files, remaining,
    shard,
};
use proptest::prelude::*;

const SPEC: &str = r#"
name = "test-search"
base = "configs/compact-aware.toml"
baseline = "runs/compact-baseline"
splits = "all"
c_primes = [1, 2, 4]
ss = [1, 2]
qualities = [10, 20, 50]
modes = ["aware", "naive"]
tolerance_points = 2.0
[budget]
epochs = 1
steps_per_epoch = 10
"#;

const BLOCKS: u32 = 5;
const BASELINE: f64 = 90.0;

fn spec() -> SearchSpec {
    SearchSpec::parse(SPEC, Path::new("configs/search/test-search.toml")).unwrap()
}

/// A stand-in for training that depends only on the configuration: more channels, less spatial
/// reduction and higher quality buy accuracy with bytes; naive training loses accuracy at low
/// quality (§3.3). Deeper splits send fewer bytes.
fn fake_train(config: &SearchConfig) -> SearchRecord {
    let (c, s, q, j) = (
        f64::from(config.c_prime),
        f64::from(config.s),
        f64::from(config.quality),
        f64::from(config.split),
    );
    let naive_loss = match config.mode {
        SearchMode::Aware => 0.0,
        SearchMode::Naive => 18.0 * (50.0 - q).max(0.0) / 30.0,
    };
    let accuracy =
        (BASELINE - 6.0 / c - 1.5 * (s - 1.0) - 30.0 / q - naive_loss + 0.3 * j).min(100.0);
    let mean_bytes = 40.0 + c * q * 12.0 / (s * s) / j;
    config.record(
        Measurement {
            accuracy,
            mean_bytes,
            p95_bytes: mean_bytes * 1.1,
            seconds: 3.0,
        },
        format!("runs/test-search/{}", config.id()),
    )
}

/// One shard's job: skip what the record file already holds, train and append the rest.
/// Returns the ids trained in this call.
fn run_shard(grid: &[SearchConfig], s: Shard, out: &Path) -> Vec<String> {
    let file = out.join(s.file_name());
    let todo = remaining(&shard(grid, s), &finished_ids(&file).unwrap());
    for config in &todo {
        append_record(&file, &fake_train(config)).unwrap();
    }
    todo.iter().map(SearchConfig::id).collect()
}

fn shard_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

#[test]
fn two_shards_merged_equal_one_unsharded_run() {
    let grid = spec().grid(BLOCKS).unwrap();
    assert_eq!(grid.len(), 5 * 3 * 2 * 3 * 2);

    let whole = tempfile::tempdir().unwrap();
    run_shard(&grid, Shard::WHOLE, whole.path());
    let sharded = tempfile::tempdir().unwrap();
    let a = run_shard(&grid, "0/2".parse().unwrap(), sharded.path());
    let b = run_shard(&grid, "1/2".parse().unwrap(), sharded.path());
    assert_eq!(a.len() + b.len(), grid.len());

    let tol = spec().tolerance_points;
    let one = merge(&shard_files(whole.path()), BASELINE, tol).unwrap();
    let two = merge(&shard_files(sharded.path()), BASELINE, tol).unwrap();
    assert_eq!(shard_files(sharded.path()).len(), 2);
    assert_eq!(two.records, one.records);
    assert_eq!(two.chosen, one.chosen);
    assert_eq!(two.unmet, one.unmet);
    assert!(one.missing(&grid).is_empty() && two.missing(&grid).is_empty());
    assert!(one.warnings.is_empty() && two.warnings.is_empty());

    // The choice is Algorithm 1 line 29, checked against a naive scan of the grid.
    assert_eq!(one.chosen.len() + one.unmet.len(), BLOCKS as usize);
    assert!(!one.chosen.is_empty());
    for chosen in &one.chosen {
        let best = grid
            .iter()
            .filter(|c| c.split == chosen.split_index)
            .map(fake_train)
            .filter(|r| r.accuracy >= BASELINE - tol - 1e-9)
            .map(|r| r.mean_bytes)
            .fold(f64::INFINITY, f64::min);
        assert!((chosen.mean_bytes - best).abs() < 1e-12, "{chosen:?}");
        assert!(chosen.accuracy >= BASELINE - tol - 1e-9);
    }

    // Merging the unsharded file with the shards again only finds exact duplicates.
    let mut all = shard_files(whole.path());
    all.extend(shard_files(sharded.path()));
    let again = merge(&all, BASELINE, tol).unwrap();
    assert_eq!(again.chosen, one.chosen);
    assert_eq!(again.duplicates, grid.len());

    let results = one
        .training_results(
            "compact",
            "fashion-mnist",
            CloudOnlyResult {
                bytes: 700.0,
                accuracy: BASELINE,
                quality: None,
            },
        )
        .unwrap();
    assert_eq!(results.splits.len(), one.chosen.len());
}

#[test]
fn a_restarted_shard_skips_finished_configurations() {
    let grid = spec().grid(BLOCKS).unwrap();
    let s: Shard = "1/3".parse().unwrap();
    let mine = shard(&grid, s);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(s.file_name());

    // The first attempt finishes 7 configurations and is killed.
    for config in &mine[..7] {
        append_record(&file, &fake_train(config)).unwrap();
    }
    let finished = finished_ids(&file).unwrap();
    assert_eq!(finished.len(), 7);

    let trained = run_shard(&grid, s, dir.path());
    assert_eq!(trained.len(), mine.len() - 7);
    assert!(trained.iter().all(|id| !finished.contains(id)));

    let records = read_records(&file).unwrap().records;
    let ids: Vec<_> = records.iter().map(|r| r.id.clone()).collect();
    let expected: Vec<_> = mine.iter().map(SearchConfig::id).collect();
    assert_eq!(ids, expected, "every configuration once, in order");
    // A third attempt has nothing left to do.
    assert!(run_shard(&grid, s, dir.path()).is_empty());
    // A shard that never ran has nothing finished.
    assert!(
        finished_ids(dir.path().join("shard-0-of-3.jsonl"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_search_restarted_with_another_shard_count_trains_nothing_twice() {
    let grid = spec().grid(BLOCKS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(record_files(dir.path().join("not-yet")).unwrap().is_empty());
    // First run: 2 shards, shard 1 dies after 5 configurations.
    run_shard(&grid, "0/2".parse().unwrap(), dir.path());
    let dying: Shard = "1/2".parse().unwrap();
    for config in shard(&grid, dying).iter().take(5) {
        append_record(dir.path().join(dying.file_name()), &fake_train(config)).unwrap();
    }
    // Second run: 3 shards, each resuming from every shard file in the folder.
    let mut trained = Vec::new();
    for i in 0..3 {
        let s = Shard::new(i, 3).unwrap();
        let done = finished_ids_in(dir.path()).unwrap();
        for config in remaining(&shard(&grid, s), &done) {
            append_record(dir.path().join(s.file_name()), &fake_train(&config)).unwrap();
            trained.push(config.id());
        }
    }
    assert_eq!(trained.len(), grid.len() / 2 - 5);
    let files = record_files(dir.path()).unwrap();
    assert_eq!(files.len(), 5, "{files:?}");
    let merged = merge(&files, BASELINE, 2.0).unwrap();
    assert_eq!(merged.records.len(), grid.len());
    assert_eq!(merged.duplicates, 0);
    assert!(merged.missing(&grid).is_empty());
}

#[test]
fn a_torn_last_line_is_skipped_then_repaired() {
    let grid = spec().grid(BLOCKS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(Shard::WHOLE.file_name());
    for config in &grid[..3] {
        append_record(&file, &fake_train(config)).unwrap();
    }
    // A write cut short: half of the fourth record, no newline.
    let line = serde_json::to_string(&fake_train(&grid[3])).unwrap();
    OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(&line.as_bytes()[..line.len() / 2])
        .unwrap();

    let read = read_records(&file).unwrap();
    assert_eq!(read.records.len(), 3);
    assert_eq!(read.warnings.len(), 1);
    assert!(read.warnings[0].contains("torn"), "{:?}", read.warnings);
    let finished = finished_ids(&file).unwrap();
    assert!(
        !finished.contains(&grid[3].id()),
        "a torn record is not finished"
    );
    let merged = merge(&[&file], BASELINE, 2.0).unwrap();
    assert_eq!(merged.records.len(), 3);
    assert_eq!(merged.warnings.len(), 1);

    // Resuming trains the fourth again; the fragment is cut off, the file is clean.
    let trained = run_shard(&grid[..4], Shard::WHOLE, dir.path());
    assert_eq!(trained, [grid[3].id()]);
    let read = read_records(&file).unwrap();
    assert_eq!(read.records.len(), 4);
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert!(fs::read_to_string(&file).unwrap().ends_with("}\n"));
}

#[test]
fn a_whole_last_record_without_newline_is_kept() {
    let grid = spec().grid(BLOCKS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hand-edited.jsonl");
    let line = serde_json::to_string(&fake_train(&grid[0])).unwrap();
    fs::write(&file, &line).unwrap();
    assert_eq!(read_records(&file).unwrap().records.len(), 1);
    append_record(&file, &fake_train(&grid[1])).unwrap();
    let read = read_records(&file).unwrap();
    assert_eq!(read.records.len(), 2);
    assert!(read.warnings.is_empty());
}

#[test]
fn conflicting_shards_fail_to_merge() {
    let grid = spec().grid(BLOCKS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("shard-0-of-2.jsonl");
    let b = dir.path().join("shard-1-of-2.jsonl");
    let record = fake_train(&grid[0]);
    append_record(&a, &record).unwrap();
    let mut rerun = record.clone();
    rerun.accuracy -= 0.5;
    append_record(&b, &rerun).unwrap();
    let err = merge(&[a, b], BASELINE, 2.0).unwrap_err().to_string();
    assert!(err.contains(&record.id), "{err}");
}

proptest! {
    /// Over `0..N`, shards are disjoint, cover the grid, keep grid order, and differ in size by
    /// at most one.
    #[test]
    fn shards_partition_the_grid(
        splits in 1u32..8,
        c_primes in 1usize..5,
        ss in 1usize..4,
        qualities in 1usize..5,
        naive in any::<bool>(),
        count in 1u32..40,
    ) {
        let list = |n: usize| (1..=n).map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
        let text = format!(
            "name = \"p\"\nbase = \"b.toml\"\nbaseline = \"b\"\nsplits = \"all\"\nc_primes = [{}]\nss = [{}]\nqualities = [{}]\nmodes = [{}]\n[budget]\nepochs = 1\n",
            list(c_primes),
            list(ss),
            (1..=qualities).map(|q| (q * 10).to_string()).collect::<Vec<_>>().join(", "),
            if naive { "\"aware\", \"naive\"" } else { "\"aware\"" },
        );
        let spec = SearchSpec::parse(&text, Path::new("p.toml")).unwrap();
        let grid = spec.grid(splits).unwrap();
        let modes = if naive { 2 } else { 1 };
        prop_assert_eq!(grid.len(), splits as usize * c_primes * ss * qualities * modes);
        let ids: Vec<String> = grid.iter().map(SearchConfig::id).collect();
        prop_assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "ids are unique");

        let mut seen = BTreeSet::new();
        let mut sizes = Vec::new();
        for i in 0..count {
            let part = shard(&grid, Shard::new(i, count).unwrap());
            sizes.push(part.len());
            let positions: Vec<usize> = part
                .iter()
                .map(|c| ids.iter().position(|id| *id == c.id()).unwrap())
                .collect();
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "grid order kept");
            for id in part.iter().map(SearchConfig::id) {
                prop_assert!(seen.insert(id), "a configuration in two shards");
            }
        }
        prop_assert_eq!(seen.len(), grid.len(), "shards cover the grid");
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        prop_assert!(max - min <= 1);
        // `i/N` strings name the same shards.
        let text = format!("{}/{}", count - 1, count);
        prop_assert_eq!(text.parse::<Shard>().unwrap(), Shard::new(count - 1, count).unwrap());
    }
}

/// The committed search for the paper's network (configs/search/resnet50.toml, used by deploy/)
/// parses and spans the paper's grid: RB1..RB16 × c' ∈ {1, 2, 5, 10} × s ∈ {1, 2} at q20,
/// compression-aware, 2-point tolerance — 128 configurations.
#[test]
fn committed_resnet50_search_has_the_papers_128_configurations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/search/resnet50.toml");
    let spec = SearchSpec::load(&path).unwrap();
    assert_eq!(spec.name, "resnet50");
    assert_eq!(spec.tolerance_points, 2.0);
    assert_eq!(spec.base, Path::new("configs/search/resnet50-base.toml"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(&spec.base)
            .is_file(),
        "base {} is not committed",
        spec.base.display()
    );
    // ResNet-50 has 16 residual blocks (paper §3.2).
    let grid = spec.grid(16).unwrap();
    assert_eq!(grid.len(), 16 * 4 * 2);
    let set = |f: fn(&SearchConfig) -> u32| grid.iter().map(f).collect::<BTreeSet<u32>>();
    assert_eq!(set(|c| c.split), (1..=16).collect());
    assert_eq!(set(|c| c.c_prime), BTreeSet::from([1, 2, 5, 10]));
    assert_eq!(set(|c| c.s), BTreeSet::from([1, 2]));
    assert!(grid.iter().all(|c| c.quality == 20
        && c.mode == SearchMode::Aware
        && c.codec == "jpeg-abbrev"
        && c.bits == 8));
    let ids: BTreeSet<String> = grid.iter().map(SearchConfig::id).collect();
    assert_eq!(ids.len(), 128);
    assert!(ids.contains("RB1-c1-s2-q20") && ids.contains("RB16-c10-s2-q20"));
}
