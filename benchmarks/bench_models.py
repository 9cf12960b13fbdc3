"""Cost of each model: parameters, MACs per pixel (counted), and latency on every backend, in one run.

    python benchmarks/bench_models.py [--weights PATH ...] [--sizes 640x512 1024x768] [--repeats 15] [--device cpu]

Latency is Fuser.fuse on a generated scene, colour conversion included (what a node pays per
frame): median of --repeats runs after two warm-up frames. Ratios are against the first model
(the released SAGE student when ../shared is present) on the same backend and size, same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from sage_core.backends import available
from sage_core.checkpoint import load_model
from sage_core.eval.profiling import count_parameters, macs_per_pixel
from sage_core.fuser import DEFAULT_WEIGHTS, Fuser, resolve_device
from sage_core.synthetic import SyntheticScene

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "checkpoints" / "sage_official_student.pt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", type=Path,
                        default=[OFFICIAL, DEFAULT_WEIGHTS] if OFFICIAL.exists() else [DEFAULT_WEIGHTS])
    parser.add_argument("--sizes", nargs="+", default=["640x512", "1024x768"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backends", nargs="+", default=["torch", "torchscript", "onnxruntime", "tensorrt"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    backends = [b for b in args.backends if available(b, device)[0]]
    skipped = [f"{b} ({available(b, device)[1]})" for b in args.backends if b not in backends]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; backends: "
          f"{', '.join(backends)}" + (f"; skipped: {'; '.join(skipped)}" if skipped else ""))

    print(f"\n{'model':<34} {'params':>9} {'MACs/px':>9} {'vs first':>9}")
    first_macs = None
    for weights in args.weights:
        model = load_model(weights)[0]
        macs = macs_per_pixel(model)
        first_macs = first_macs or macs
        print(f"{weights.name:<34} {count_parameters(model):>9,} {macs:>9,.0f} {macs / first_macs:>8.3f}x")

    print(f"\n{'model':<34} {'backend':<12} {'size':>10} {'median ms':>10} {'fps':>7} {'vs first':>9}")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        frame = SyntheticScene(width, height).frame(1.0)
        for backend in backends:
            baseline = None
            for weights in args.weights:
                fuser = Fuser.from_weights(weights, device=device, backend=backend)
                for _ in range(2):
                    fuser.fuse(frame.thermal_mono8, frame.visible)
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    fuser.fuse(frame.thermal_mono8, frame.visible)
                    times.append(1000 * (time.perf_counter() - started))
                median = statistics.median(times)
                baseline = baseline or median
                print(f"{weights.name:<34} {backend:<12} {size:>10} {median:>10.1f} {1000 / median:>7.1f} "
                      f"{median / baseline:>8.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
