#!/usr/bin/env python3
"""The workloads of `bottlenet bench`, in PyTorch, so its figures can be compared on one machine.

Each workload is timed `--runs` times after `--warmup` untimed calls and reported as the median
with p10/p90 (linear interpolation, as numpy.percentile), min and max:

  codec/CxHxW             µs  one sample's wire round trip: 8-bit min–max quantize (paper eq. 1),
                              tile the channels into one grayscale image (§2.2), Pillow JPEG
                              encode at quality 20, 28-byte frame header + CRC-32, then the
                              reverse (CRC check, JPEG decode, untile, dequantize). Shapes
                              1x28x28, 8x28x28, 1x56x56, 64x56x56.
  resnet50/full           ms  torchvision resnet50(weights=None), batch 1, 3x224x224, eval mode.
  resnet50/head/RBj       ms  stem + blocks 1..j (RB1..RB16 = layer1.0 … layer4.2).
  resnet50/tail/RBj       ms  blocks j+1..16 + avgpool + fc, on the RBj feature map.
  compact/full, compact/head/RBj, compact/tail/RBj
                          ms  the same for the compact ResNet (3x3 stem, no max-pool, BasicBlocks
                              [16, 32, 64] x 2), batch 1, 1x28x28, 10 classes, RB1..RB6.
  train/compact/plain     ms  one training step at batch 64 of 1x28x28: forward, cross-entropy,
                              backward, SGD (lr 0.05, momentum 0.9, weight decay 5e-4).
  train/compact/rb1-identity  the same with the bottleneck after RB1 (c'=1, s=2), no codec.
  train/compact/rb1-aware     the same with the codec round trip of every sample in the forward
                              pass, straight-through backward (paper §2.2), as `mode = "aware"`.

  train-ops/b64 conv KxK[/S] CIN→COUT at HxW: forward | input grad | weight grad
                          ms  every convolution shape of the compact backbone at batch 64, as the
                              training step runs it: F.conv2d, and aten::convolution_backward
                              asked for one gradient at a time (the names `bench --only train-ops`
                              prints), then the totals weighted by how often each shape occurs.

  onnx/...                ms  only with `--only onnx` (needs onnxruntime): torchvision's ResNet-50
                              exported with torch.onnx (opset 17) and run in onnxruntime beside
                              the same model in PyTorch, batch 1, 3x224x224; with `--onnx-dir DIR`
                              (the folder `bottlenet export` wrote) also every .onnx file there,
                              batch 1, on a zero input of its declared shape.

Server throughput (1, 8, 64 clients) is not reproduced here: see docs/pytorch-comparison.md.
Nothing is downloaded: weights are random (latency does not depend on their values).

Needs python3-torchvision, python3-pil, python3-numpy (Debian) or `pip install torch torchvision
pillow numpy`. Progress goes to stderr, so `--json > torch.json` keeps stdout clean.

Usage: pytorch_bench.py [--runs 20] [--warmup 2] [--threads N] [--json]
                        [--only codec,resnet50,compact,train,train-ops,onnx] [--onnx-dir DIR]
                        [--quality 20] [--codec-batch 0] [--seed 0] [--no-mkldnn]
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

# OpenMP threads that spin while they wait turn a 10 ms forward into 240 ms when another process
# holds a core (measured on the shared 2-core machine): they burn the time slice the thread they
# wait for needs. libgomp reads this once, when torch loads it; OMP_WAIT_POLICY=ACTIVE overrides.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402 (after the environment is set)
import PIL  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.resnet import BasicBlock, conv1x1  # noqa: E402

# The codec mirror sits beside this script (Python puts the script's folder on sys.path).
from codec_mirror import codec_roundtrip, encode_frame, relu_like  # noqa: E402

GROUPS = ("codec", "resnet50", "compact", "train", "train-ops")
# Groups run only when --only names them (onnxruntime is not a Debian package).
OPTIONAL_GROUPS = ("onnx",)
CODEC_SHAPES = ((1, 28, 28), (8, 28, 28), (1, 56, 56), (64, 56, 56))


# ---------------------------------------------------------------------------------------------
# Timing


def summarize(name, unit, samples, extra=None):
    """Median, p10/p90 (linear interpolation), min, max of `samples` (already in `unit`)."""
    values = np.asarray(samples, dtype=np.float64)
    result = {
        "name": name,
        "unit": unit,
        "median": float(np.median(values)),
        "p10": float(np.percentile(values, 10)),
        "p90": float(np.percentile(values, 90)),
        "min": float(values.min()),
        "max": float(values.max()),
        "runs": int(values.size),
    }
    if extra:
        result.update(extra)
    return result


def measure(fn, runs, warmup, scale):
    """`warmup` untimed calls, then `runs` timed ones; returns each time in seconds · `scale`.

    PyTorch on the CPU is synchronous, so a call's tensors are ready when it returns.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) * 1e-9 * scale)
    return times


def progress(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Codec: the round trip of crates/bottlenet-codec in numpy and Pillow (scripts/codec_mirror.py).


def codec_batch(args, features):
    """Round trips per timed run: `--codec-batch`, or (0, the default) as many as fill about 2 ms,
    so that timer and scheduler noise do not swamp a tens-of-µs call (as criterion batches)."""
    if args.codec_batch > 0:
        return args.codec_batch
    once = min(measure(lambda: codec_roundtrip(features, args.quality), runs=3, warmup=1, scale=1e9))
    return max(1, min(1000, int(2e6 // max(once, 1.0))))


def bench_codec(args):
    results = []
    for shape in CODEC_SHAPES:
        name = "codec/{}x{}x{}".format(*shape)
        progress(name)
        features = relu_like(shape, seed=1)
        frame = encode_frame(features, args.quality)
        batch = codec_batch(args, features)

        def run():
            for _ in range(batch):
                codec_roundtrip(features, args.quality)

        times = measure(run, args.runs, args.warmup, 1e6 / batch)
        results.append(summarize(name, "us", times, {"frame_bytes": len(frame), "round_trips_per_run": batch}))
    return results


# ---------------------------------------------------------------------------------------------
# Models: torchvision's ResNet-50 and the compact ResNet of crates/bottlenet-model/src/resnet.rs.


class CompactResNet(nn.Module):
    """arch.rs `Arch::Compact`: conv1 3x3 stride 1 (no bias) + BN + ReLU, no max-pool, three
    stages of two BasicBlocks with [16, 32, 64]·width channels (stride 2 at the first block of
    stages 2 and 3), global average pool, fc. Parameter names are torchvision's."""

    def __init__(self, in_channels=1, num_classes=10, width=1):
        super().__init__()
        planes = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        channels = planes[0]
        stages = []
        for stage, p in enumerate(planes):
            blocks = []
            for index in range(2):
                stride = 2 if index == 0 and stage > 0 else 1
                down = None
                if stride != 1 or channels != p:
                    down = nn.Sequential(conv1x1(channels, p, stride), nn.BatchNorm2d(p))
                blocks.append(BasicBlock(channels, p, stride, down))
                channels = p
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():  # torchvision's initialisation, as resnet.rs
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def stem(model):
    parts = [model.conv1, model.bn1, model.relu]
    if hasattr(model, "maxpool"):
        parts.append(model.maxpool)
    return parts


def blocks(model):
    """Every residual block in order: split point RBj ends after item j-1."""
    layers = [getattr(model, f"layer{k}") for k in range(1, 5) if hasattr(model, f"layer{k}")]
    return [(f"layer{k + 1}.{i}", block) for k, layer in enumerate(layers) for i, block in enumerate(layer)]


def classify(model):
    return [model.avgpool, nn.Flatten(1), model.fc]


def head(model, j):
    """Stem and blocks 1..j (sharing the model's modules)."""
    return nn.Sequential(*stem(model), *[b for _, b in blocks(model)[:j]]).eval()


def tail(model, j):
    """Blocks j+1..N, global average pool and fc."""
    return nn.Sequential(*[b for _, b in blocks(model)[j:]], *classify(model)).eval()


def bench_splits(args, label, model, input_shape):
    model.eval()
    x = torch.rand(1, *input_shape)
    results = []
    with torch.inference_mode():
        progress(f"{label}/full")
        times = measure(lambda: model(x), args.runs, args.warmup, 1e3)
        results.append(summarize(f"{label}/full", "ms", times))
        for j, (path, _) in enumerate(blocks(model), start=1):
            progress(f"{label} RB{j} ({path})")
            h, t = head(model, j), tail(model, j)
            z = h(x)
            shape = "x".join(str(d) for d in z.shape[1:])
            extra = {"split": j, "after": path, "features": shape}
            times = measure(lambda: h(x), args.runs, args.warmup, 1e3)
            results.append(summarize(f"{label}/head/RB{j}", "ms", times, extra))
            times = measure(lambda: t(z), args.runs, args.warmup, 1e3)
            results.append(summarize(f"{label}/tail/RB{j}", "ms", times, extra))
    return results


# ---------------------------------------------------------------------------------------------
# Training step with and without the bottleneck unit (crates/bottlenet-model/src/bottleneck.rs).


def side_padding(length, s):
    """bottleneck.rs side_padding: conv padding p and transposed-conv output padding o such that
    the conv gives ceil(H/s) and the transposed conv gives back exactly H."""
    q = -(-length // s)
    r = q * s - length
    p = (r + 2) // 2
    return p, 2 * p - r - 1


def conv_bn_relu(conv, channels):
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class BottleneckUnit(nn.Module):
    """Reduction: 1x1 conv c→c' + BN + ReLU, then (s > 1) a (s+1)x(s+1) conv stride s c'→c' + BN
    + ReLU. Restoration: (s > 1) the mirroring transposed conv + BN + ReLU, then 1x1 conv c'→c +
    BN + ReLU. All convs bias-free. Between the two, optionally, the real codec round trip."""

    def __init__(self, input_shape, c_prime, s):
        super().__init__()
        c, h, w = input_shape
        (ph, oh), (pw, ow) = side_padding(h, s), side_padding(w, s)
        k = s + 1
        reduction = [conv_bn_relu(nn.Conv2d(c, c_prime, 1, bias=False), c_prime)]
        restoration = []
        if s > 1:
            spatial = nn.Conv2d(c_prime, c_prime, k, stride=s, padding=(ph, pw), bias=False)
            mirror = nn.ConvTranspose2d(c_prime, c_prime, k, stride=s, padding=(ph, pw), output_padding=(oh, ow),
                                        bias=False)
            reduction.append(conv_bn_relu(spatial, c_prime))
            restoration.append(conv_bn_relu(mirror, c_prime))
        restoration.append(conv_bn_relu(nn.Conv2d(c_prime, c, 1, bias=False), c))
        self.reduction = nn.Sequential(*reduction)
        self.restoration = nn.Sequential(*restoration)
        for m in self.reduction.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def codec_straight_through(z, quality):
    """Every sample through the wire round trip on the host; backward is the identity (§2.2):
    z + (roundtrip(z) − z).detach()."""
    host = z.detach().cpu().numpy()
    decoded = np.stack([codec_roundtrip(sample, quality) for sample in host])
    return z + (torch.from_numpy(decoded) - z).detach()


class BottleNet(nn.Module):
    """Backbone with a bottleneck unit after block `split` (none when `split` is None)."""

    def __init__(self, backbone, input_shape, split, c_prime, s, codec, quality):
        super().__init__()
        self.backbone = backbone
        self.split, self.codec, self.quality = split, codec, quality
        self.unit = None
        if split is not None:
            with torch.no_grad():
                shape = tuple(head(backbone, split)(torch.zeros(1, *input_shape)).shape[1:])
            self.unit = BottleneckUnit(shape, c_prime, s)
            self.head = nn.Sequential(*stem(backbone), *[b for _, b in blocks(backbone)[:split]])
            self.tail = nn.Sequential(*[b for _, b in blocks(backbone)[split:]], *classify(backbone))

    def forward(self, x):
        if self.unit is None:
            return self.backbone(x)
        z = self.unit.reduction(self.head(x))
        if self.codec:
            z = codec_straight_through(z, self.quality)
        return self.tail(self.unit.restoration(z))


def bench_train(args):
    results = []
    input_shape = (1, 28, 28)
    x = torch.rand(64, *input_shape)
    targets = torch.arange(64) % 10
    variants = (("plain", None, False), ("rb1-identity", 1, False), ("rb1-aware", 1, True))
    for label, split, codec in variants:
        name = f"train/compact/{label}"
        progress(name)
        torch.manual_seed(args.seed)
        net = BottleNet(CompactResNet(), input_shape, split, c_prime=1, s=2, codec=codec, quality=args.quality)
        net.train()
        optim = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, dampening=0.0, weight_decay=5e-4)

        def step():
            optim.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), targets)
            loss.backward()
            optim.step()

        times = measure(step, args.runs, args.warmup, 1e3)
        extra = {"batch": 64, "input": "1x28x28"}
        if split is not None:
            extra.update({"split": split, "c_prime": 1, "s": 2, "codec": "jpeg" if codec else "none"})
        results.append(summarize(name, "ms", times, extra))
    return results


def conv_label(conv, side):
    """The name `bench --only train-ops` gives this convolution (bench_train_ops.rs, label)."""
    k, s = conv.kernel_size[0], conv.stride[0]
    stride = "" if s == 1 else f"/{s}"
    return f"conv {k}x{k}{stride} {conv.in_channels}\u2192{conv.out_channels} at {side}x{side}"


def bench_train_ops(args):
    """Each distinct convolution of the compact backbone at batch 64: forward, input gradient,
    weight gradient, then the totals weighted by each shape's count (bench_train_ops.rs)."""
    batch = 64
    net = CompactResNet()
    seen = []  # (label, conv, input shape) in first-use order, with counts
    counts = {}

    def record(conv, inputs, _output):
        label = conv_label(conv, inputs[0].shape[-1])
        if label not in counts:
            seen.append((label, conv, tuple(inputs[0].shape)))
            counts[label] = 0
        counts[label] += 1

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.rand(batch, 1, 28, 28))
    for h in hooks:
        h.remove()
    results, totals = [], {"forward": 0.0, "input grad": 0.0, "weight grad": 0.0}
    for label, conv, shape in seen:
        x = torch.randn(*shape)
        w = conv.weight.detach().clone()
        stride, padding = list(conv.stride), list(conv.padding)
        dy = torch.randn_like(F.conv2d(x, w, None, stride, padding))

        def backward(mask):
            return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, stride, padding, [1, 1], False, [0, 0], 1, mask)

        phases = (("forward", lambda: F.conv2d(x, w, None, stride, padding)),
                  ("input grad", backward([True, False, False])),
                  ("weight grad", backward([False, True, False])))
        for phase, fn in phases:
            name = f"train-ops/b{batch} {label}: {phase}"
            progress(name)
            r = summarize(name, "ms", measure(fn, args.runs, args.warmup, 1e3), {"uses": counts[label]})
            totals[phase] += r["median"] * counts[label]
            results.append(r)
    totals["all three"] = sum(totals.values())
    for phase, ms in totals.items():
        results.append(summarize(f"train-ops/b{batch} every backbone conv: {phase}", "ms", [ms], {"note": "medians x uses, summed"}))
    return results


# ---------------------------------------------------------------------------------------------
# onnxruntime: torchvision's ResNet-50 through torch.onnx, and the files `bottlenet export` wrote.


def ort_session(path, threads):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one operator at a time, as the Rust side and torch here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_measure(args, name, path, x, extra):
    session = ort_session(path, args.threads)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    progress(name)
    times = measure(lambda: session.run([out.name], {inp.name: x}), args.runs, args.warmup, 1e3)
    return summarize(name, "ms", times, dict(extra, engine="onnxruntime", input=inp.name, output=out.name))


def bench_onnx(args):
    import tempfile
    results = []
    torch.manual_seed(args.seed)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.rand(1, 3, 224, 224)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resnet50.onnx")
        with torch.inference_mode():
            torch.onnx.export(model, x, path, opset_version=17, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        # Side by side in one run: PyTorch eager, then onnxruntime, on the same weights and input.
        progress("onnx/resnet50/full (torch)")
        with torch.inference_mode():
            times = measure(lambda: model(x), args.runs, args.warmup, 1e3)
        results.append(summarize("onnx/resnet50/full/torch", "ms", times, {"engine": "torch"}))
        results.append(ort_measure(args, "onnx/resnet50/full/onnxruntime", path, x.numpy(), {"exported_by": "torch.onnx"}))
    if args.onnx_dir:
        files = sorted(p for p in (os.path.join(d, f) for d, _, fs in os.walk(args.onnx_dir) for f in fs) if p.endswith(".onnx"))
        if not files:
            raise SystemExit(f"--onnx-dir {args.onnx_dir}: no .onnx files there; run `bottlenet export --bundle B --out DIR` first")
        for path in files:
            session = ort_session(path, args.threads)
            (inp,) = session.get_inputs()
            shape = [1 if not isinstance(d, int) else d for d in inp.shape]
            rel = os.path.relpath(path, args.onnx_dir)
            results.append(ort_measure(args, f"onnx/bundle/{rel}", path, np.zeros(shape, dtype=np.float32),
                                       {"exported_by": "bottlenet export", "shape": "x".join(map(str, shape))}))
    return results


# ---------------------------------------------------------------------------------------------


def onnxruntime_version():
    try:
        import onnxruntime
        return onnxruntime.__version__
    except ImportError:
        return None


def environment(args):
    try:
        from PIL import features
        turbo = bool(features.check_feature("libjpeg_turbo"))
    except (ImportError, ValueError):
        turbo = None
    return {
        "tool": "scripts/pytorch_bench.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "libjpeg_turbo": turbo,
        "mkldnn": bool(torch.backends.mkldnn.is_available() and not args.no_mkldnn),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "onnxruntime": onnxruntime_version(),
        "runs": args.runs,
        "warmup": args.warmup,
        "quality": args.quality,
        "codec_batch": args.codec_batch,
        "seed": args.seed,
    }


def print_table(env, results):
    print(f"PyTorch {env['torch']} (torchvision {env['torchvision']}, Pillow {env['pillow']}), "
          f"{env['threads']} threads, mkldnn {'on' if env['mkldnn'] else 'off'}, "
          f"{env['runs']} runs after {env['warmup']} warm-up, {env['date']}")
    print(f"{'workload':<36} {'unit':>4} {'median':>10} {'p10':>10} {'p90':>10}  note")
    for r in results:
        if "after" in r:
            note = f"after {r['after']}, features {r['features']}"
        elif "engine" in r:
            note = r["engine"] + (f", exported by {r['exported_by']}" if "exported_by" in r else "")
        elif "frame_bytes" in r:
            note = f"{r['frame_bytes']} B frame, mean of {r['round_trips_per_run']} per run"
        else:
            note = ""
        print(f"{r['name']:<36} {r['unit']:>4} {r['median']:>10.2f} {r['p10']:>10.2f} {r['p90']:>10.2f}  {note}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per workload (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else os.cpu_count(), help="torch.set_num_threads (default: all usable cores)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated groups from {','.join(GROUPS + OPTIONAL_GROUPS)} (default: all but onnx)")
    parser.add_argument("--onnx-dir", help="with the onnx group: also time every .onnx file under this folder")
    parser.add_argument("--quality", type=int, default=20, help="JPEG quality (default 20, the paper's)")
    parser.add_argument("--codec-batch", type=int, default=0,
                        help="codec round trips averaged per timed run (default 0: enough for ~2 ms; 1: single calls)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for weights and inputs")
    parser.add_argument("--no-mkldnn", action="store_true", help="disable oneDNN (MKL-DNN) convolutions")
    args = parser.parse_args()
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS + OPTIONAL_GROUPS))
    if unknown:
        parser.error(f"--only: unknown group(s) {', '.join(unknown)}; expected some of {', '.join(GROUPS + OPTIONAL_GROUPS)}")
    if "onnx" in groups and onnxruntime_version() is None:
        parser.error("--only onnx needs onnxruntime in this Python: pip install onnxruntime")
    if args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.codec_batch < 0 or not 1 <= args.quality <= 100:
        parser.error("need --runs >= 1, --warmup >= 0, --threads >= 1, --codec-batch >= 0, 1 <= --quality <= 100")
    args.groups = groups
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)  # one operator at a time, as the Rust side
    except RuntimeError:
        pass  # already set once in this process
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    torch.manual_seed(args.seed)
    env = environment(args)
    results = []
    if "codec" in args.groups:
        results += bench_codec(args)
    if "resnet50" in args.groups:
        torch.manual_seed(args.seed)
        results += bench_splits(args, "resnet50", torchvision.models.resnet50(weights=None), (3, 224, 224))
    if "compact" in args.groups:
        torch.manual_seed(args.seed)
        results += bench_splits(args, "compact", CompactResNet(), (1, 28, 28))
    if "train" in args.groups:
        results += bench_train(args)
    if "train-ops" in args.groups:
        results += bench_train_ops(args)
    if "onnx" in args.groups:
        results += bench_onnx(args)
    if args.json:
        json.dump({"environment": env, "results": results}, sys.stdout, indent=2)
        print()
    else:
        print_table(env, results)


if __name__ == "__main__":
    main()
