#!/usr/bin/env python3
"""ResNet-50, batch 1, 224², random weights, in Debian PyTorch 1.13, which runs its convolutions in
Debian's libdnnl 2.6 (oneDNN): eager, TorchScript-frozen (BatchNorm folded) and in oneDNN's blocked
layout end to end. Usage: onednn_via_torch.py [THREADS]. OMP_WAIT_POLICY is left at its default."""
import time, torch, torchvision, sys
from torch.utils import mkldnn as mk
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
m = torchvision.models.resnet50(weights=None).eval()
x = torch.rand(1, 3, 224, 224)
def t(f, n=20):
    for _ in range(3): f()
    v = []
    for _ in range(n):
        s = time.perf_counter(); f(); v.append((time.perf_counter() - s) * 1e3)
    v.sort(); return v[len(v)//2]
with torch.no_grad():
    plain = t(lambda: m(x))
    fused = torch.jit.freeze(torch.jit.script(m))  # conv+bn folded, oneDNN where it applies
    frozen = t(lambda: fused(x))
    mm = mk.to_mkldnn(m)
    xm = x.to_mkldnn()
    blocked = t(lambda: mm(xm).to_dense())
print(f"torch {torch.__version__} threads {torch.get_num_threads()}: eager {plain:.1f} ms, jit-frozen {frozen:.1f} ms, mkldnn blocked layout {blocked:.1f} ms")
