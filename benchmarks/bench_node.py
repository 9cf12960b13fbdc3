"""The fusion node as a robot runs it: two cameras at --rate from a process of their own, over DDS on loopback.

    python benchmarks/bench_node.py [--rate 30] [--seconds 30] [--sizes 640x512 1280x1024] \\
        [--model-file-path PATH] [--backend auto] [--inference-threads 0]

Per frame size: thermal mono16 + RGB bgr8 at --rate Hz each for --seconds, the fusion node in its own
process with default parameters (plus the flags given), fused frames received here. Prints delivered
rate, latency p50/p95/p99 (camera stamp -> fused frame received), the node's CPU (100 % = one core)
and CPU time per delivered frame, its resident memory at start and end, and its own counters
(dropped pairs, in-node inference time, and its latency from camera stamp to publish: the rest of the
end-to-end latency is delivery of the fused frame to this process).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from sage_core import inference_settings
from sage_ros.harness.traffic import run_live


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sizes", nargs="+", default=["640x512", "1280x1024"], help="WIDTHxHEIGHT")
    inference_settings.add_arguments(parser)  # the node's parameters of the same names
    parser.add_argument("--baseline", default=None, metavar="CHECKOUT",
                        help="also run the node of another checkout (e.g. a git worktree of an older commit) on "
                        "the same traffic, before this one (same run, same machine)")
    args = parser.parse_args()
    params = inference_settings.given(args)  # the others keep the node's defaults
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        for label, checkout in ([("baseline", args.baseline)] if args.baseline else []) + [("this", None)]:
            print(f"{size} ({label}): {args.rate:g} Hz x 2 cameras for {args.seconds:g} s ...", flush=True)
            rows.append((size, label, run_live(width, height, args.rate, args.seconds, params,
                                               node_pythonpath=checkout)))
    print(f"\n{'size':>10} {'node':<9} {'sent':>6} {'recv':>6} {'Hz out':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'node CPU':>9} {'CPU ms/frame':>12} {'RSS start':>10} {'RSS end':>8} {'dropped':>8} {'infer ms':>9} "
          f"{'in-node latency mean/p95':>24} {'pair wait mean/max':>19} {'pair dt mean':>12}")
    for size, label, run in rows:
        _print_row(size, label, run)
    return 0


def _print_row(size: str, label: str, run) -> None:
    p = run.percentiles()
    cpu = statistics.mean(s.cpu_percent for s in run.samples[1:]) if len(run.samples) > 1 else float("nan")
    print(f"{size:>10} {label:<9} {run.sent:>6} {run.received:>6} {run.received / run.seconds:>7.2f} "
          f"{p['p50']:>7.1f} {p['p95']:>7.1f} {p['p99']:>7.1f} {cpu:>8.0f}% "
          f"{1000 * run.node_cpu_s / max(run.received, 1):>12.1f} {run.samples[0].rss_mb:>8.0f}MB "
          f"{run.samples[-1].rss_mb:>6.0f}MB {run.diagnostics.get('dropped pairs', '?'):>8} "
          f"{run.diagnostics.get('inference (ms) mean', '?'):>9} "
          f"{run.diagnostics.get('end-to-end latency (ms) mean', '?'):>12} / "
          f"{run.diagnostics.get('end-to-end latency (ms) p95', '?'):<9} "
          f"{run.diagnostics.get('pair decision wait (ms) mean', '-'):>9} / "
          f"{run.diagnostics.get('pair decision wait (ms) max', '-'):<7} "
          f"{run.diagnostics.get('pair stamp difference (ms) mean', '?'):>12}")


if __name__ == "__main__":
    sys.exit(main())
