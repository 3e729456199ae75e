//! `bench --only ops`: where the time goes (issue 13 item 1).
//!
//! * The ResNet-50 RB1 phone half (stem, RB1, reduction c′=1 s=2) and server half (restoration,
//!   RB2 … RB16, pool, fc) at 224², batch 1, per kind of operation, as loaded from a bundle
//!   (BatchNorm unfolded) and as `serve`/`infer` run them (folded). Each run's per-kind totals
//!   are collected through the model's [`OpObserver`] hook; a figure is the median over runs and its
//!   note the kind's share of the half.
//! * The compact training step (batch 64, RB1 aware, SGD with momentum) split into forward,
//!   backward and optimizer step.
//!
//! Timing one operation at a time is exact on flex, which runs each operation to completion
//! before returning; on a GPU backend it would time launches, so this group refuses other devices.

use super::{Bench, figure};
use anyhow::{Context, Result, bail};
use bottlenet_model::{Arch, BottleNet, BottleNetConfig, CodecMode, DeviceChoice, FoldBatchNorm, Op, OpObserver};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use std::collections::BTreeMap;
use std::time::Instant;

/// Per-kind wall time of one forward pass, in milliseconds.
#[derive(Debug, Default)]
struct OpTimer {
    totals: BTreeMap<Op, f64>,
}

impl OpObserver for OpTimer {
    fn op<T>(&mut self, op: Op, run: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = run();
        *self.totals.entry(op).or_default() += start.elapsed().as_secs_f64() * 1e3;
        out
    }
}

/// Medians over runs of each kind's total, and of the whole pass.
struct Profile {
    per_op: BTreeMap<Op, Vec<f64>>,
    whole: Vec<f64>,
}

impl Profile {
    fn collect(warmup: usize, runs: usize, mut pass: impl FnMut(&mut OpTimer) -> Result<()>) -> Result<Self> {
        for _ in 0..warmup {
            pass(&mut OpTimer::default())?;
        }
        let mut profile = Profile { per_op: BTreeMap::new(), whole: Vec::new() };
        for _ in 0..runs {
            let mut timer = OpTimer::default();
            let start = Instant::now();
            pass(&mut timer)?;
            profile.whole.push(start.elapsed().as_secs_f64() * 1e3);
            for (op, ms) in timer.totals {
                profile.per_op.entry(op).or_default().push(ms);
            }
        }
        Ok(profile)
    }
}

impl Bench<'_> {
    pub(super) fn ops(&mut self) -> Result<()> {
        if self.args.device != DeviceChoice::Flex {
            bail!("bench --only ops times one operation at a time, which is exact only on flex; run it with --device flex");
        }
        let (warmup, runs) = (self.args.warmup, self.args.runs);
        let config = BottleNetConfig::new(Arch::ResNet50, [3, 224, 224], 1000).with_split(1, 1, 2);
        self.device.seed(7);
        let net = BottleNet::new(&config, &self.device)?;
        let x = Tensor::<4>::random([1, 3, 224, 224], Distribution::Uniform(0.0, 1.0), &self.device);
        for (form, net) in [("BN unfolded", net.clone()), ("BN folded", net.fold_batch_norms())] {
            let (mobile, cloud) = (net.mobile_half()?, net.cloud_half()?);
            let z = mobile.features(x.clone())?;
            let head = Profile::collect(warmup, runs, |timer| {
                mobile.features_observed(x.clone(), timer)?.into_data();
                Ok(())
            })?;
            let tail = Profile::collect(warmup, runs, |timer| {
                cloud.logits_observed(z.clone(), timer)?.into_data();
                Ok(())
            })?;
            for (half, profile) in [("RB1 head + reduction", head), ("restoration + RB1 tail", tail)] {
                let whole = figure("ops", format!("resnet50 {half}, {form}: whole"), "ms", profile.whole, String::new());
                let total = whole.median;
                self.push(whole);
                for (op, samples) in profile.per_op {
                    let f = figure("ops", format!("resnet50 {half}, {form}: {op}"), "ms", samples, String::new());
                    let share = 100.0 * f.median / total;
                    self.push(crate::cmd::bench::Figure { note: format!("{share:.1}% of the half"), ..f });
                }
            }
        }
        self.train_phases()
    }

    /// The compact training step at batch 64 (RB1 aware), by phase.
    fn train_phases(&mut self) -> Result<()> {
        let device = self.device.clone().autodiff();
        device.seed(1);
        let config = BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_split(1, 1, 2);
        let mut net = Some(BottleNet::new(&config, &device)?);
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        let targets = Tensor::<1, Int>::from_data(TensorData::new((0..64).map(|i| i % 10).collect::<Vec<i64>>(), [64]), &device);
        let mut optim = SgdConfig::new().with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0))).init();
        let mut phases: [(&str, Vec<f64>); 3] = [("forward + loss", Vec::new()), ("backward", Vec::new()), ("optimizer step", Vec::new())];
        let runs = self.args.runs.clamp(1, 10);
        for round in 0..self.args.warmup + runs {
            let model = net.take().context("model")?;
            let t0 = Instant::now();
            let loss = loss_fn.forward(model.forward(x.clone(), CodecMode::Aware)?, targets.clone());
            loss.clone().into_data();
            let t1 = Instant::now();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let t2 = Instant::now();
            let model = optim.step(0.05, model, grads);
            model.backbone.conv1.weight.val().into_data();
            let t3 = Instant::now();
            if round >= self.args.warmup {
                for ((_, samples), (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
                    samples.push((b - a).as_secs_f64() * 1e3);
                }
            }
            net = Some(model);
        }
        for (phase, samples) in phases {
            self.push(figure("ops", format!("compact train step batch 64, RB1 aware: {phase}"), "ms", samples, String::new()));
        }
        Ok(())
    }
}
