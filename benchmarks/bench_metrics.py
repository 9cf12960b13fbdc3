"""Time of the full metric set on one 1024x768 triple (target: under 1 s on 2 CPU cores).

    python benchmarks/bench_metrics.py [--repeats 5] [--image DIR/STEM]

Uses m3fd_sage6 image 00000 with the official SAGE output when ../shared is present, else a
generated 1024x768 scene fused by the average rule. Prints the median total and the time per metric.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sage_core.eval import metrics as M
from sage_core.eval.baselines import AverageFusion
from sage_core.image_files import read_image
from sage_core.synthetic import SyntheticScene

M3FD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "m3fd_sage6"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if M3FD.exists():
        fused = read_image(M3FD / "reference" / "sage_official" / "00000.png")
        ir, vis = read_image(M3FD / "ir" / "00000.png"), read_image(M3FD / "vis" / "00000.png")
        source = "m3fd_sage6/00000 (official SAGE output)"
    else:
        frame = SyntheticScene(1024, 768).frame(1.0)
        ir, vis = frame.thermal_mono8, frame.visible
        fused = AverageFusion().fuse(ir, vis)
        source = "generated 1024x768 scene (average fusion)"
    M.all_metrics(fused, ir, vis)  # warm-up
    totals = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        M.all_metrics(fused, ir, vis)
        totals.append(time.perf_counter() - started)
    f, a, b = M.to_gray_l(fused), M.to_gray_l(ir), M.to_gray_l(vis)
    print(f"{source}: full metric set, median of {args.repeats}: {statistics.median(totals) * 1000:.0f} ms "
          f"(min {min(totals) * 1000:.0f} ms); the reference implementation takes about 18 s here")
    for name in M.METRICS:
        if name == "MS_SSIM":
            continue  # computed together with SSIM
        started = time.perf_counter()
        M.gray_metrics(f, a, b, (name,))
        label = "SSIM+MS_SSIM" if name == "SSIM" else name
        print(f"  {label:<13} {1000 * (time.perf_counter() - started):7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
