"""Per-frame time of Fuser.fuse (colour pipeline included) for each model, at several frame sizes.

    python benchmarks/bench_fuse.py [--weights PATH ...] [--sizes 640x512 1024x768] [--repeats 5] [--device cpu]

Prints a table: median and min milliseconds per frame after one warm-up frame,
and each model's time as a ratio of the first model's, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sage_core.fuser import DEFAULT_WEIGHTS, Fuser  # noqa: E402
from sage_core.synthetic import SyntheticScene  # noqa: E402

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "checkpoints" / "sage_official_student.pt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", type=Path,
                        default=[OFFICIAL, DEFAULT_WEIGHTS] if OFFICIAL.exists() else [DEFAULT_WEIGHTS])
    parser.add_argument("--sizes", nargs="+", default=["640x512", "1024x768"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'model':<32} {'size':>10} {'median ms':>10} {'min ms':>8} {'vs first':>9}")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        frame = SyntheticScene(width, height).frame(1.0)
        baseline = None
        for weights in args.weights:
            fuser = Fuser.from_weights(weights, device=args.device)
            fuser.fuse(frame.thermal_mono8, frame.visible)  # warm-up
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                fuser.fuse(frame.thermal_mono8, frame.visible)
                times.append(1000 * (time.perf_counter() - started))
            median = statistics.median(times)
            baseline = baseline or median
            print(f"{weights.name:<32} {size:>10} {median:>10.1f} {min(times):>8.1f} {median / baseline:>8.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
