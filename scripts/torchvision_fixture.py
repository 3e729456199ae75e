#!/usr/bin/env python3
"""Golden fixture for bottlenet-model's torchvision import test.

Builds a randomly initialised torchvision ResNet (seeded), randomises every BatchNorm's weight,
bias and running statistics too (torchvision starts them at 1/0/0/1, which would hide a
mis-mapped BN), and writes into OUT_DIR:

  <arch>.pth          torch.save(model.state_dict())
  <arch>.safetensors  the same tensors in the SafeTensors layout (written here, no extra package)
  <arch>.json         {"arch", "seed", "input_shape", "input", "logits_shape", "logits"}: one
                      input image and the logits PyTorch computes for it in eval mode

Needs only Debian's python3-torchvision (apt-get install python3-torchvision). The Rust test
(crates/bottlenet-model/tests/torchvision_import.rs) runs this script into a temporary folder;
nothing it writes is committed (a resnet18 checkpoint is ~45 MB).

Usage: torchvision_fixture.py [OUT_DIR] [--arch resnet18] [--seed 0] [--size 64]
"""

import argparse
import json
import os
import struct
import sys

import torch
import torchvision

DTYPES = {torch.float32: "F32", torch.int64: "I64"}
RESIDUAL_BRANCH_END = {"resnet18": ".bn2", "resnet34": ".bn2", "resnet50": ".bn3", "resnet101": ".bn3"}


def write_safetensors(path, tensors):
    """SafeTensors: u64-LE header length, JSON header {name: dtype, shape, data_offsets}, raw data."""
    header, blobs, offset = {}, [], 0
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous().cpu()
        data = tensor.numpy().tobytes()
        header[name] = {"dtype": DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("out_dir", nargs="?",
                        default=os.path.join(here, "..", "crates", "bottlenet-model", "tests", "fixtures"))
    parser.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet34", "resnet50", "resnet101"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                # The last BN of each residual branch (bn2 of a BasicBlock, bn3 of a Bottleneck) is
                # scaled down, as in trained networks whose residual branches are small. Without
                # it the random logits grow with depth to ~5e6 at ResNet-101 (545 at ResNet-50),
                # where float32 rounding alone exceeds the test's 1e-4; with it they stay O(1).
                if name.endswith(RESIDUAL_BRANCH_END[args.arch]):
                    module.weight.mul_(0.2)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(7)
    model.eval()

    x = torch.rand(1, 3, args.size, args.size)
    with torch.no_grad():
        logits = model(x)

    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, args.arch)
    state = model.state_dict()
    torch.save(state, base + ".pth")
    write_safetensors(base + ".safetensors", state)
    with open(base + ".json", "w") as f:
        json.dump({
            "arch": args.arch,
            "seed": args.seed,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "input_shape": list(x.shape),
            "input": x.flatten().tolist(),
            "logits_shape": list(logits.shape),
            "logits": logits.flatten().tolist(),
        }, f)
    print(f"wrote {base}.pth, {base}.safetensors, {base}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
