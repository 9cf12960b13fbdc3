"""Soak test of the fusion node: two cameras at 30 Hz for minutes, with malformed messages and stamp jumps mixed in.

    python benchmarks/soak_node.py --minutes 10 [--rate 30] [--size 640x512] [--fault-every 15]

The cameras run in a process of their own and send, every --fault-every periods, one bad message of
the next kind in turn (unknown encoding, short data, zero size, NaN float, an extreme 32FC1 frame in
the mono16 stream, a stamp a day ahead, stamp zero). Prints one row per minute (delivered rate,
latency p50/p95/p99 of the frames that arrived in that minute, node CPU, node memory) and at the end
the faults sent against the bad messages the node counted, by kind.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from sage_core import inference_settings
from sage_ros.harness.traffic import FAULTS, run_live


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--size", default="640x512", help="WIDTHxHEIGHT")
    parser.add_argument("--fault-every", type=int, default=15, help="one bad message every N periods (0: none)")
    inference_settings.add_arguments(parser)  # the node's parameters of the same names
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"soak: {args.size}, {args.rate:g} Hz x 2 cameras, {args.minutes:g} min, a fault every {args.fault_every} "
          f"periods", flush=True)
    print(f"{'minute':>6} {'Hz out':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'node CPU':>9} {'RSS MB':>7}",
          flush=True)
    minute: list = []

    def on_sample(sample, run) -> None:
        minute.append(sample)
        if len(minute) == 60:
            _print_minute(run, minute)
            minute.clear()

    run = run_live(width, height, args.rate, 60 * args.minutes, inference_settings.given(args),
                   fault_every=args.fault_every, on_sample=on_sample)
    _print_summary(run)
    return 0


def _print_minute(run, samples) -> None:
    start, end = samples[0].at - 1.0, samples[-1].at
    p = run.percentiles(start, end)
    rate = (samples[-1].received - samples[0].received) / (samples[-1].t - samples[0].t + 1e-9)
    print(f"{samples[-1].t / 60:>6.0f} {rate:>7.2f} {p['p50']:>7.1f} {p['p95']:>7.1f} {p['p99']:>7.1f} "
          f"{statistics.mean(s.cpu_percent for s in samples):>8.0f}% {samples[-1].rss_mb:>7.0f}", flush=True)


def _print_summary(run) -> None:
    p = run.percentiles()
    print(f"\nall: sent {run.sent} pairs in {run.seconds:.0f} s, received {run.received} fused "
          f"({run.received / run.seconds:.2f} Hz); latency p50 {p['p50']:.1f} / p95 {p['p95']:.1f} / "
          f"p99 {p['p99']:.1f} ms; node CPU {100 * run.node_cpu_s / run.seconds:.0f}% of one core; RSS "
          f"{run.samples[0].rss_mb:.0f} -> {run.samples[-1].rss_mb:.0f} MB")
    counted = {k[len("bad messages: "):]: v for k, v in run.diagnostics.items() if k.startswith("bad messages: ")}
    print(f"faults sent: {', '.join(f'{k} {run.faults.get(k, 0)}' for k in FAULTS)}")
    print(f"bad messages counted by the node: {', '.join(f'{k} {v}' for k, v in sorted(counted.items())) or 'none'}")
    values = run.diagnostics
    print(f"node status after the cameras stopped: {values.get('message', '?')}; dropped pairs "
          f"{values.get('dropped pairs', '?')}, inference mean {values.get('inference (ms) mean', '?')} ms")


if __name__ == "__main__":
    sys.exit(main())
