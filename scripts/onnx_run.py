#!/usr/bin/env python3
"""Runs ONNX models exported by `bottlenet export` in onnxruntime, one .npy in, one .npy out.

    onnx_run.py [--check] MODEL.onnx IN.npy OUT.npy [MODEL.onnx IN.npy OUT.npy ...]

Each model must have one input and one output (the exported halves and full network do); the
input array is fed as float32 and the output written as float32. `--check` first runs the ONNX
checker with full shape inference (needs the `onnx` package). One JSON line per model goes to
stdout: its input and output names and shapes as onnxruntime reads them, and the provider used.

Needs: pip install onnxruntime numpy (onnx for --check). Exit status 2 when one is missing.
"""

import json
import sys


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if not args or len(args) % 3 != 0:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as error:
        print(f"onnx_run.py needs onnxruntime and numpy ({error}); pip install onnxruntime numpy", file=sys.stderr)
        return 2
    if check:
        try:
            import onnx
        except ImportError as error:
            print(f"onnx_run.py --check needs the onnx package ({error}); pip install onnx", file=sys.stderr)
            return 2
    options = ort.SessionOptions()
    # Reproducible figures: no graph rewrites beyond the basic ones, which keep every operator's
    # arithmetic (constant folding, dead-node removal).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    for k in range(0, len(args), 3):
        model, source, target = args[k : k + 3]
        if check:
            onnx.checker.check_model(onnx.load(model), full_check=True)
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        x = np.load(source).astype(np.float32)
        (y,) = session.run([out.name], {inp.name: x})
        np.save(target, y.astype(np.float32))
        print(json.dumps({
            "model": model,
            "input": {"name": inp.name, "shape": inp.shape},
            "output": {"name": out.name, "shape": out.shape},
            "providers": session.get_providers(),
            "onnxruntime": ort.__version__,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
