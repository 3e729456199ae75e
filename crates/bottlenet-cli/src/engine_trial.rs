//! `--engine auto`, the CPU default where both engines are built in: every exported graph is
//! planned on XNNPACK and on tract, each plan is timed on this machine at load, and the faster
//! one is kept (the slower is dropped at once). Which engine wins depends on the host and on the
//! graph: on a 2-core AMD EPYC (AVX2) XNNPACK won the ResNet-50 RB1 phone half (11.8–13.3 ms
//! against tract's 13.3–21.6) and lost the server half (118–130 against 90–100) and the full
//! network (docs/engines.md, "One engine per graph"), while session 15 had measured XNNPACK
//! ahead on all three on an AVX-512 Xeon. Both answer within 1e-4 of burn flex, so the choice
//! never changes an answer beyond that.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::exported_graph::ExportedGraph;
use bottlenet_model::onnx::OnnxModel;
use bottlenet_runtime::Result;

/// Which engine runs each block, in turn (0: XNNPACK, 1: tract): A B B A, so that a host whose
/// speed drifts during the trial slows both alike.
const BLOCK_ORDER: [usize; 4] = [0, 1, 1, 0];

/// Timed runs per block, after one untimed run (two in an engine's first block: with one,
/// tract's ResNet-50 phone half read 11.6 ms, with two 7.6 ms, its figure in the bench).
const RUNS_PER_BLOCK: usize = 2;

/// The pause before each block: longer than a pool's workers spin after a run. Only where either
/// plan runs on a pool: a graph small enough for the calling thread leaves nothing spinning.
const SPIN_SETTLE: Duration = Duration::from_millis(100);

/// Past this much trial time the blocks left are skipped once each engine has a timed run (a big
/// graph on a slow phone).
const TRIAL_BUDGET: Duration = Duration::from_millis(1500);

/// Plans `model` on XNNPACK and on tract and keeps the faster at batch 1 (the phone's batch, and
/// the server's under light load). An engine that cannot plan the graph (XNNPACK refuses an
/// operator it lacks) leaves the other; when neither can, tract's refusal is returned.
pub fn load_faster(model: OnnxModel) -> Result<ExportedGraph> {
    let xnnpack = ExportedGraph::load(Engine::Xnnpack, model.clone());
    let tract = ExportedGraph::load(Engine::Tract, model);
    let (xnnpack, tract) = match (xnnpack, tract) {
        (Ok(x), Ok(t)) => (x, t),
        (Ok(x), Err(e)) => {
            tracing::info!(error = %e, "tract cannot plan this graph; XNNPACK runs it");
            return Ok(x);
        }
        (Err(e), Ok(t)) => {
            tracing::info!(error = %e, "XNNPACK cannot plan this graph; tract runs it");
            return Ok(t);
        }
        (Err(_), Err(e)) => return Err(e),
    };
    let input = vec![0.0f32; xnnpack.sample_shape().iter().product()];
    let candidates = [xnnpack, tract];
    let settle = if candidates.iter().any(ExportedGraph::on_pool) { SPIN_SETTLE } else { Duration::ZERO };
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let start = Instant::now();
    // Each block after a pause and an untimed run of its own engine: a pool's workers spin for a
    // while after each run, so a run that follows the other engine's pays for its spinning
    // cores (measured: tract's ResNet-50 phone half at 16 ms right after XNNPACK's block, 8 ms
    // on its own). Each engine's figure is its fastest run: a busy host only ever adds time.
    for engine in BLOCK_ORDER {
        if start.elapsed() >= TRIAL_BUDGET && times.iter().all(|t| !t.is_empty()) {
            break;
        }
        let graph = &candidates[engine];
        std::thread::sleep(settle);
        let untimed = if times[engine].is_empty() { 2 } else { 1 };
        for _ in 0..untimed {
            graph.run(1, input.clone())?;
        }
        for _ in 0..RUNS_PER_BLOCK {
            let t = Instant::now();
            graph.run(1, input.clone())?;
            times[engine].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let [xnnpack_ms, tract_ms] = times.each_ref().map(|samples| fastest(samples));
    let winner = faster([xnnpack_ms, tract_ms]);
    let [on_xnnpack, on_tract] = candidates;
    let chosen = if winner == 0 {
        drop(on_tract);
        on_xnnpack
    } else {
        drop(on_xnnpack);
        on_tract
    };
    tracing::info!(input = ?chosen.sample_shape(), xnnpack_ms, tract_ms, chosen = %chosen.engine(), "engine chosen for an exported graph (fastest run at load, batch 1)");
    Ok(chosen)
}

/// The index of the faster of (XNNPACK, tract) by their fastest runs; a tie keeps XNNPACK.
fn faster(fastest_ms: [f64; 2]) -> usize {
    usize::from(fastest_ms[1] < fastest_ms[0])
}

/// The least of a non-empty sample.
fn fastest(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_faster_run_wins_and_a_tie_keeps_xnnpack() {
        assert_eq!(faster([14.4, 19.8]), 0);
        assert_eq!(faster([127.2, 98.8]), 1);
        assert_eq!(faster([5.0, 5.0]), 0);
        assert_eq!(fastest(&[3.0, 1.0, 2.0]), 1.0);
        assert_eq!(fastest(&[7.0]), 7.0);
    }
}
