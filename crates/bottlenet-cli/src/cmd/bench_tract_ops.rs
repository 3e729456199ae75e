//! `bottlenet bench --only tract-ops` (cargo feature `tract`): where the default engine's time goes
//! (issue 13, "the profile that explains what is left"). The ResNet-50 RB1 phone half, server half
//! and full network of the `engines` group (same seeded weights and inputs), planned exactly as
//! `serve` and `infer` plan them, run once per round with every node of the plan timed through
//! tract's `run_plan_with_eval` hook.
//!
//! * Per kind of node (tract's op name; a matrix product also names the kernel tract picked): the
//!   median over rounds of the kind's total, its share of the graph, and its arithmetic from
//!   tract's own cost model (`TypedOp::cost`, multiply-adds): GFMA and the rate reached, so a kind
//!   far from the machine's peak is visible as such.
//! * Each whole graph on one thread and on `--threads`, back to back as onnxruntime and PyTorch are
//!   timed, and on `--threads` after an idle gap, as a camera-paced phone runs it.
//!
//! Timing node by node is exact on the CPU: tract runs each node to completion before the next.

use super::bench::{Bench, Figure, figure, time};
use super::bench_engines::server_input;
use crate::engine::TRACT_VERSION;
use crate::tract_engine::{TractGraph, node_multiply_adds};
use anyhow::{Context, Result, anyhow};
use bottlenet_model::onnx::{OnnxModel, export_cloud, export_full, export_mobile, exported_file};
use std::collections::BTreeMap;
use std::time::Instant;
use tract_onnx::prelude::{Tensor as TractTensor, TypedRunnableModel, tvec};

const GROUP: &str = "tract-ops";

/// The pause before each run of the paced figure: a 30 frames/s camera leaves about this much
/// between a phone's images.
const IDLE_GAP: std::time::Duration = std::time::Duration::from_millis(25);

/// The nodes of one kind and what they cost.
#[derive(Debug, Default)]
struct KindTotals {
    /// The kind's nodes, by id in the plan.
    nodes: Vec<usize>,
    /// Multiply-adds per run, from tract's cost model.
    fma: f64,
    /// Milliseconds, one entry per round.
    rounds_ms: Vec<f64>,
}

/// The kind a node is counted under: its op's name, and for a matrix product the kernel(s) tract
/// chose (from the op's `info`, "Mult: m:… k:… n:… with [kernel]").
fn node_kind(plan: &TypedRunnableModel, node_id: usize) -> String {
    let op = &plan.model().node(node_id).op;
    let name = op.name().to_string();
    let kernel = op.info().ok().into_iter().flatten().find_map(|line| line.split_once(" with ").map(|(_, k)| k.trim().to_string()));
    match kernel {
        Some(kernel) => format!("{name} {kernel}"),
        None => name,
    }
}

/// Multiply-adds of one node per run, from tract's cost model (0 where the op declares none).
fn node_fma(plan: &TypedRunnableModel, node_id: usize) -> Result<f64> {
    node_multiply_adds(plan.model(), node_id).map_err(|e| anyhow!("reading node {node_id}'s cost: {e:#}"))
}

/// Runs `plan` on `input` `warmup + runs` times, timing every node; per-kind totals of the timed
/// rounds, and each timed round's whole time.
fn profile(plan: &std::sync::Arc<TypedRunnableModel>, input: &TractTensor, warmup: usize, runs: usize) -> Result<(BTreeMap<String, KindTotals>, Vec<f64>)> {
    let kinds: Vec<String> = (0..plan.model().nodes().len()).map(|id| node_kind(plan, id)).collect();
    let mut totals: BTreeMap<String, KindTotals> = BTreeMap::new();
    for &id in plan.order_without_consts() {
        let entry = totals.entry(kinds[id].clone()).or_default();
        entry.nodes.push(id);
        entry.fma += node_fma(plan, id)?;
    }
    let mut whole = Vec::with_capacity(runs);
    for round in 0..warmup + runs {
        let mut per_node = vec![0.0f64; kinds.len()];
        let mut state = plan.spawn().map_err(|e| anyhow!("starting a tract run: {e:#}"))?;
        let start = Instant::now();
        state
            .run_plan_with_eval(tvec!(input.clone().into()), |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                per_node[node.id] += t.elapsed().as_secs_f64() * 1e3;
                out
            })
            .map_err(|e| anyhow!("tract failed to run the profiled graph: {e:#}"))?;
        let elapsed = start.elapsed().as_secs_f64() * 1e3;
        if round < warmup {
            continue;
        }
        whole.push(elapsed);
        for kind in totals.values_mut() {
            kind.rounds_ms.push(kind.nodes.iter().map(|&id| per_node[id]).sum());
        }
    }
    Ok((totals, whole))
}

impl Bench<'_> {
    pub(super) fn tract_ops(&mut self) -> Result<()> {
        let threads = self.threads;
        if !self.args.json {
            self.bar.suspend(|| println!("tract-ops: tract {TRACT_VERSION}, ResNet-50 RB1 as served (batch-1 plans, {threads} threads), every node timed; GFMA from tract's cost model"));
        }
        let net = self.resnet50_rb1()?;
        let image = net.image_values()?;
        let graphs = [
            ("resnet50 RB1 phone half", export_mobile(&net.mobile)?, image.clone()),
            ("resnet50 RB1 server half", export_cloud(&net.cloud)?, server_input(&net.mobile, &net.image, &net.codec)?),
            ("resnet50 full network", export_full(&net.full)?, image),
        ];
        if let Some(dir) = &self.args.onnx_out {
            let split = Some(net.split_name.as_str());
            for ((_, model, _), file) in graphs.iter().zip([exported_file("mobile", split), exported_file("cloud", split), exported_file("full", None)]) {
                super::export::write_onnx(dir, &file, model)?;
            }
        }
        for (what, model, (shape, values)) in graphs {
            self.profile_graph(what, model, &shape, values)?;
        }
        Ok(())
    }

    fn profile_graph(&mut self, what: &str, model: OnnxModel, shape: &[usize], values: Vec<f32>) -> Result<()> {
        let (warmup, runs) = (self.args.warmup, self.args.runs);
        let served = TractGraph::load(model.clone())?;
        // The same graph planned on one thread: `TractGraph::load` picks tract's executor from the
        // pool it is called in.
        let single_pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().context("building a one-thread pool")?;
        let single = single_pool.install(|| TractGraph::load(model))?;
        let batch = shape[0];
        let run_served = || served.run(batch, values.clone()).map(drop).map_err(anyhow::Error::from);
        let run_single = || single.run(batch, values.clone()).map(drop).map_err(anyhow::Error::from);
        // Back to back, as onnxruntime and PyTorch are timed (scripts/pytorch_bench.py).
        let single_figure = figure(GROUP, format!("{what}: whole, 1 thread"), "ms", time(warmup, runs, 1e3, run_single)?, String::new());
        let mut served_figure = figure(GROUP, format!("{what}: whole, {} threads", self.threads), "ms", time(warmup, runs, 1e3, run_served)?, String::new());
        served_figure.note = format!("{:.2}x faster than 1 thread", single_figure.median / served_figure.median);
        // As a paced phone or a server between requests runs it: after the pool's threads idled.
        let mut paced = Vec::with_capacity(runs);
        for _ in 0..runs {
            std::thread::sleep(IDLE_GAP);
            paced.extend(time(0, 1, 1e3, run_served)?);
        }
        let mut paced_figure = figure(GROUP, format!("{what}: whole, {} threads, after {} ms idle", self.threads, IDLE_GAP.as_millis()), "ms", paced, String::new());
        paced_figure.note = format!("{:.2}x the back-to-back time", paced_figure.median / served_figure.median);
        self.push(single_figure);
        self.push(served_figure);
        self.push(paced_figure);

        let input = TractTensor::from_shape(shape, &values).map_err(|e| anyhow!("building {what}'s input: {e:#}"))?;
        let (kinds, whole) = profile(served.plan(), &input, warmup, runs)?;
        let whole = figure(GROUP, format!("{what}: whole, every node timed"), "ms", whole, String::new());
        let (total_ms, total_fma) = (whole.median, kinds.values().map(|k| k.fma).sum::<f64>());
        let whole = Figure { note: format!("{:.2} GFMA, {:.1} GFLOP/s", total_fma / 1e9, 2.0 * total_fma / (total_ms * 1e6)), ..whole };
        self.push(whole);
        // Largest share first.
        let mut rows: Vec<(KindTotals, Figure)> = kinds
            .into_iter()
            .map(|(kind, mut totals)| {
                let f = figure(GROUP, format!("{what}: {kind}"), "ms", std::mem::take(&mut totals.rounds_ms), String::new());
                (totals, f)
            })
            .collect();
        rows.sort_by(|a, b| b.1.median.total_cmp(&a.1.median));
        for (totals, f) in rows {
            let share = 100.0 * f.median / total_ms;
            let arithmetic = if totals.fma > 0.0 {
                format!(", {:.3} GFMA, {:.1} GFLOP/s", totals.fma / 1e9, 2.0 * totals.fma / (f.median * 1e6))
            } else {
                String::new()
            };
            let nodes = if totals.nodes.len() == 1 { "1 node".to_string() } else { format!("{} nodes", totals.nodes.len()) };
            let note = format!("{share:.1}% of the graph, {nodes}{arithmetic}");
            self.push(Figure { note, ..f });
        }
        Ok(())
    }
}
