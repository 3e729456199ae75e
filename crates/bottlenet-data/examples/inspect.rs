//! Resolves the default dataset (or `PATH`) the way the CLI does, prints what was found, and
//! times one epoch of training batches.
//!
//! `cargo run --release -p bottlenet-data --example inspect -- [PATH] [BATCH]`

use std::path::PathBuf;
use std::time::Instant;

use bottlenet_data::{BatchOptions, Batcher, resolve_default};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(PathBuf::from);
    let batch: usize = args.next().map_or(Ok(128), |b| b.parse())?;

    let t = Instant::now();
    let (pair, source) = resolve_default(path.as_deref())?;
    println!("source: {source} (loaded in {:.2?})", t.elapsed());
    for w in &pair.warnings {
        println!("warning: {w}");
    }
    for d in [&pair.train, &pair.test] {
        println!(
            "{}: {} samples, input {:?}, {} classes",
            d.name(),
            d.len(),
            d.input_shape(),
            d.num_classes()
        );
    }
    println!("classes: {}", pair.train.class_names().join(", "));

    let batcher = Batcher::new(pair.train.clone(), BatchOptions::train(batch, 0))?;
    let t = Instant::now();
    let mut samples = 0;
    for b in batcher.epoch(0) {
        samples += b?.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "one training epoch: {} batches of {batch}, {samples} samples in {secs:.2} s ({:.0} samples/s, {} rayon threads)",
        batcher.num_batches(),
        samples as f64 / secs,
        rayon::current_num_threads()
    );
    Ok(())
}
