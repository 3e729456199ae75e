//! `--engine auto`, the CPU default where two or more exported-graph engines are built in: every
//! exported graph is planned on each of them (oneDNN, XNNPACK, tract), each plan is timed on this
//! machine at load, and the fastest is kept (the others are dropped at once). Which engine wins
//! depends on the host and on the graph: on a 2-core AMD EPYC (AVX2) XNNPACK won the ResNet-50
//! RB1 phone half against tract (11.8–13.3 ms against 13.3–21.6) and lost the server half (118–130
//! against 90–100) and the full network (docs/engines.md, "One engine per graph"), while session
//! 15 had measured XNNPACK ahead on all three on an AVX-512 Xeon; oneDNN's figures are in
//! docs/engines.md, "oneDNN as an inference engine". All answer within 1e-4 of burn flex, so the
//! choice never changes an answer beyond that.

use std::time::{Duration, Instant};

use crate::engine::exported_engines;
use crate::exported_graph::ExportedGraph;
use bottlenet_model::onnx::OnnxModel;
use bottlenet_runtime::{Error, Result};

/// Timed runs per block, after one untimed run (two in an engine's first block: with one,
/// tract's ResNet-50 phone half read 11.6 ms, with two 7.6 ms, its figure in the bench).
const RUNS_PER_BLOCK: usize = 2;

/// The pause before each block: longer than a pool's workers spin after a run. Only where a
/// plan runs on a pool: a graph small enough for the calling thread leaves nothing spinning.
const SPIN_SETTLE: Duration = Duration::from_millis(100);

/// Past this much trial time the blocks left are skipped once each engine has a timed run (a big
/// graph on a slow phone).
const TRIAL_BUDGET: Duration = Duration::from_millis(1500);

/// Which candidate runs each block, in turn: 0 1 … k−1 k−1 … 1 0, so that a host whose speed
/// drifts during the trial slows every engine alike (A B B A for two).
fn block_order(candidates: usize) -> Vec<usize> {
    (0..candidates).chain((0..candidates).rev()).collect()
}

/// Plans `model` on every exported-graph engine built in and keeps the fastest at batch 1 (the
/// phone's batch, and the server's under light load). An engine that cannot plan the graph
/// (oneDNN and XNNPACK refuse an operator they lack) leaves it to the others; when none can, the
/// last refusal is returned.
pub fn load_fastest(model: OnnxModel) -> Result<ExportedGraph> {
    let mut candidates = Vec::new();
    let mut refusal = None;
    for engine in exported_engines() {
        match ExportedGraph::load(engine, model.clone()) {
            Ok(graph) => candidates.push(graph),
            Err(e) => {
                tracing::info!(%engine, error = %e, "this engine cannot plan the graph; the others run it");
                refusal = Some(e);
            }
        }
    }
    drop(model);
    if candidates.len() <= 1 {
        return candidates.pop().ok_or_else(|| refusal.unwrap_or_else(|| Error::InvalidArgument("no exported-graph engine is built into this binary".into())));
    }
    let input = vec![0.0f32; candidates[0].sample_shape().iter().product()];
    let settle = if candidates.iter().any(ExportedGraph::on_pool) { SPIN_SETTLE } else { Duration::ZERO };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); candidates.len()];
    let start = Instant::now();
    // Each block after a pause and an untimed run of its own engine: a pool's workers spin for a
    // while after each run, so a run that follows another engine's pays for its spinning cores
    // (measured: tract's ResNet-50 phone half at 16 ms right after XNNPACK's block, 8 ms on its
    // own). Each engine's figure is its fastest run: a busy host only ever adds time.
    for index in block_order(candidates.len()) {
        if start.elapsed() >= TRIAL_BUDGET && times.iter().all(|t| !t.is_empty()) {
            break;
        }
        let graph = &candidates[index];
        std::thread::sleep(settle);
        let untimed = if times[index].is_empty() { 2 } else { 1 };
        for _ in 0..untimed {
            graph.run(1, input.clone())?;
        }
        for _ in 0..RUNS_PER_BLOCK {
            let t = Instant::now();
            graph.run(1, input.clone())?;
            times[index].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let fastest_ms: Vec<f64> = times.iter().map(|samples| fastest(samples)).collect();
    let winner = fastest_index(&fastest_ms);
    let timed: Vec<String> = candidates.iter().zip(&fastest_ms).map(|(g, ms)| format!("{} {ms:.2} ms", g.engine())).collect();
    let chosen = candidates.swap_remove(winner);
    drop(candidates);
    tracing::info!(input = ?chosen.sample_shape(), timed = %timed.join(", "), chosen = %chosen.engine(), "engine chosen for an exported graph (fastest run at load, batch 1)");
    Ok(chosen)
}

/// The index of the least of `fastest_ms`; a tie keeps the earlier engine.
fn fastest_index(fastest_ms: &[f64]) -> usize {
    fastest_ms.iter().enumerate().fold(0, |best, (i, &ms)| if ms < fastest_ms[best] { i } else { best })
}

/// The least of a non-empty sample.
fn fastest(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_run_wins_and_a_tie_keeps_the_earlier_engine() {
        assert_eq!(fastest_index(&[14.4, 19.8]), 0);
        assert_eq!(fastest_index(&[127.2, 98.8]), 1);
        assert_eq!(fastest_index(&[50.0, 60.0, 49.9]), 2);
        assert_eq!(fastest_index(&[5.0, 5.0, 6.0]), 0);
        assert_eq!(fastest(&[3.0, 1.0, 2.0]), 1.0);
        assert_eq!(fastest(&[7.0]), 7.0);
        assert_eq!(block_order(2), [0, 1, 1, 0]);
        assert_eq!(block_order(3), [0, 1, 2, 2, 1, 0]);
    }
}
