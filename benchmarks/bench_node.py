"""End-to-end benchmark of the fusion node: latency and delivered rate over DDS on loopback.

    python benchmarks/bench_node.py [--pairs 40] [--rate 10] [--sizes 640x512 1280x1024] [--weights PATH ...]

For each frame size and model: N pairs (thermal mono16 + bgr8) published at R Hz
to the fusion node process, fused frames received by a recorder. Prints latency
p50/p95/p99 (publish -> fused frame received), delivered rate, and the node's own
inference time and dropped pairs, all models measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sage_core.options import DEFAULT_WEIGHTS
from sage_ros.dds import isolate_dds
from sage_ros.loopback import run_loopback, synthetic_pairs

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "checkpoints" / "sage_official_student.pt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--sizes", nargs="+", default=["640x512", "1280x1024"])
    parser.add_argument("--weights", nargs="+", type=Path,
                        default=[DEFAULT_WEIGHTS, OFFICIAL] if OFFICIAL.exists() else [DEFAULT_WEIGHTS])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto", help="the node's backend parameter")
    args = parser.parse_args()
    isolate_dds()
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        pairs = synthetic_pairs(args.pairs, width, height, args.rate)
        for weights in args.weights:
            print(f"{size} {weights.name}: {args.pairs} pairs at {args.rate:g} Hz ...", flush=True)
            params = {"model_file_path": str(weights), "device": args.device, "backend": args.backend}
            result = run_loopback(pairs, args.rate, params, progress=False,
                                  drain_s=8.0 if "official" in weights.name else 3.0)
            latency = result.latency_percentiles()
            rows.append((size, weights.name, result, latency))
    print(f"\n{'size':>10} {'model':<30} {'sent':>5} {'recv':>5} {'Hz out':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'infer ms':>9} {'dropped':>8}")
    for size, name, result, latency in rows:
        print(f"{size:>10} {name:<30} {result.sent:>5} {result.received:>5} {result.delivered_hz:>7.2f} "
              f"{latency.get('p50', float('nan')):>8.1f} {latency.get('p95', float('nan')):>8.1f} "
              f"{latency.get('p99', float('nan')):>8.1f} {result.diagnostics.get('inference (ms) mean', '?'):>9} "
              f"{result.diagnostics.get('dropped pairs', '?'):>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
