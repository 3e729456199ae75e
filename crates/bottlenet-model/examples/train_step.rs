//! Wall time of one compression-aware training step (forward with the real codec round trip,
//! backward, Adam step) of the compact model, batch 64 of 1×28×28, median of `--runs`.
//!
//! ```text
//! cargo run --release -p bottlenet-model --example train_step -- [--width 1] [--split 2] [--runs 10] [--mode aware]
//! ```

use bottlenet_model::{Arch, BottleNet, BottleNetConfig, CodecMode, DeviceChoice};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut width, mut split, mut runs, mut mode) = (1usize, 2usize, 10usize, CodecMode::Aware);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--width" => width = value.parse()?,
            "--split" => split = value.parse()?,
            "--runs" => runs = value.parse()?,
            "--mode" => mode = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let device = DeviceChoice::Flex.device()?.autodiff();
    let config = BottleNetConfig::new(Arch::Compact, [1, 28, 28], 10).with_width(width).with_split(split, 4, 2);
    let mut net = BottleNet::new(&config, &device)?;
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new((0..64i64).map(|i| i % 10).collect::<Vec<_>>(), [64]), &device);
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + 2 {
        let start = Instant::now();
        let logits = net.forward(x.clone(), mode)?;
        let loss = loss_fn.forward(logits, targets.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-3, net, grads);
        let _ = net.backbone.conv1.weight.val().into_data();
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "compact width {width}, RB{split} (c'=4, s=2), mode {mode}, batch 64 of 1x28x28: median train step {:.0} ms over {runs} runs",
        times[times.len() / 2]
    );
    Ok(())
}
