//! Freed heap memory in the middle of an arena leaves the process's resident set once
//! `release_free_memory` runs (glibc on Linux, where the crate has something to do).
#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(clippy::unwrap_used)] // tests may unwrap (COMMON.md)

/// `VmRSS` of this process in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn freed_blocks_below_a_live_one_leave_the_resident_set() {
    // 1024 blocks of 64 KiB (below glibc's default mmap threshold, so they come from the heap),
    // each written so its pages are resident; then one more kept alive above them, so glibc's
    // own trimming of the heap's top cannot return the freed ones.
    const BLOCKS: usize = 1024;
    const BLOCK: usize = 64 * 1024;
    let mut blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![(i % 251) as u8 + 1; BLOCK]).collect();
    let keep = vec![7u8; BLOCK];
    let touched: u64 = blocks.iter().map(|b| u64::from(b[BLOCK - 1])).sum();
    assert!(touched > 0);
    blocks.clear();
    blocks.shrink_to_fit();
    let before = resident_kib();
    let released = bottlenet_heap::release_free_memory();
    let after = resident_kib();
    let freed_kib = (BLOCKS * BLOCK / 1024) as u64;
    eprintln!("VmRSS {before} KiB before, {after} KiB after (released: {released}; {freed_kib} KiB freed)");
    assert!(released, "malloc_trim gave nothing back");
    assert!(before.saturating_sub(after) >= freed_kib / 2, "resident memory fell by {} KiB of the {freed_kib} KiB freed", before.saturating_sub(after));
    assert_eq!(keep[BLOCK - 1], 7);
}
