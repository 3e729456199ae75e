//! Batch-1 latency of a backbone's full forward and of its head / tail at chosen split points,
//! plus the BottleNet phone half (head + reduction + codec encode) and server half (decode +
//! restoration + tail) there. Median of `--runs` timed runs after two warm-up runs.
//!
//! ```text
//! cargo run --release -p bottlenet-model --example latency -- \
//!     [--arch resnet50] [--input 3x224x224] [--splits 1,3] [--c-prime 1] [--s 2] [--runs 20] [--device flex]
//! ```

use bottlenet_model::{Arch, BottleNet, BottleNetConfig, DeviceChoice, ResNet, parse_shape};
use burn::tensor::{Distribution, Tensor};
use std::time::{Duration, Instant};

struct Args {
    arch: Arch,
    input: [usize; 3],
    splits: Vec<usize>,
    c_prime: usize,
    s: usize,
    runs: usize,
    device: DeviceChoice,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        arch: Arch::ResNet50,
        input: [3, 224, 224],
        splits: vec![1, 3],
        c_prime: 1,
        s: 2,
        runs: 20,
        device: DeviceChoice::Flex,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--arch" => args.arch = value.parse().map_err(|e| bad(&e))?,
            "--input" => args.input = parse_shape(&value).map_err(|e| bad(&e))?,
            "--splits" => {
                args.splits = value.split(',').map(|s| s.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|e| bad(&e))?
            }
            "--c-prime" => args.c_prime = value.parse().map_err(|e| bad(&e))?,
            "--s" => args.s = value.parse().map_err(|e| bad(&e))?,
            "--runs" => args.runs = value.parse().map_err(|e| bad(&e))?,
            "--device" => args.device = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(args)
}

/// Median wall time of `runs` calls after two warm-up calls. Each call must read its result back
/// to the host so lazy backends finish the work inside the timed region.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let device = args.device.device()?;
    let [c, h, w] = args.input;
    let config = BottleNetConfig::new(args.arch, args.input, 1000);
    let net = ResNet::new(&config.backbone(), &device)?;
    let x = Tensor::<4>::random([1, c, h, w], Distribution::Uniform(0.0, 1.0), &device);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{} batch 1 {c}x{h}x{w} on {} ({threads} threads), median of {} runs", args.arch, args.device, args.runs);

    let full = median(args.runs, || {
        let _ = net.forward(x.clone()).expect("forward").into_data();
    });
    println!("{:<34} {:>9.2} ms", "full forward", ms(full));

    for &j in &args.splits {
        let z = net.head(x.clone(), j)?;
        let head = median(args.runs, || {
            let _ = net.head(x.clone(), j).expect("head").into_data();
        });
        let tail = median(args.runs, || {
            let _ = net.tail(z.clone(), j).expect("tail").into_data();
        });
        println!("{:<34} {:>9.2} ms", format!("RB{j} head (stem..RB{j})"), ms(head));
        println!("{:<34} {:>9.2} ms", format!("RB{j} tail (RB{}..fc)", j + 1), ms(tail));

        let bottlenet = BottleNet::new(&config.clone().with_split(j, args.c_prime, args.s), &device)?;
        let frames = bottlenet.encode(x.clone())?;
        let encode = median(args.runs, || {
            let _ = bottlenet.encode(x.clone()).expect("encode");
        });
        let decode = median(args.runs, || {
            let _ = bottlenet.decode(&frames).expect("decode").into_data();
        });
        let label = format!("c'={} s={} {}", args.c_prime, args.s, bottlenet.config().codec.codec);
        println!("{:<34} {:>9.2} ms  ({} B frame)", format!("RB{j} phone: head+reduce+encode"), ms(encode), frames[0].len());
        println!("{:<34} {:>9.2} ms  ({label})", format!("RB{j} server: decode+restore+tail"), ms(decode));
    }
    Ok(())
}
