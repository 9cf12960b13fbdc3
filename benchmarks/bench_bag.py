"""Offline bag fusion throughput (pairs per second) against the node's real-time rate.

    python benchmarks/bench_bag.py [--pairs 150] [--sizes 640x512 1280x1024] [--device auto] [--rate 30]

For each size and input transport (raw ``mono16`` + ``bgr8``, or PNG thermal + JPEG RGB on
``/compressed`` topics), writes a bag of generated pairs (``sage_core.synthetic``) in a temporary folder,
fuses it with ``sage_ros.bags.fuse_bag`` as ``sage-fuse --bag`` does (input topics copied, MCAP out), and
prints one table row: pairs per second over the whole pass (reading, decoding, fusing, writing; the
model loaded before) and how many times the camera rate that is.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from sage_core import inference_settings
from sage_core.alignment import Aligner
from sage_core.pipeline import FramePipeline
from sage_core.synthetic import SyntheticScene
from sage_core.thermal import ThermalNormalizer
from sage_ros.bags.fuse_bag import fuse_bag
from sage_ros.bags.offline import OfflineFusion, build_pipeline
from sage_ros.bags.recording import PairStreams, write_pair_bag
from sage_ros.parameters import from_values

INPUTS = {"raw": PairStreams(), "jpeg": PairStreams(thermal_transport="png", rgb_transport="jpeg")}


def size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--sizes", type=size, nargs="+", default=[(640, 512), (1280, 1024)])
    inference_settings.add_arguments(parser)  # the node's parameters of the same names
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate to compare with (Hz)")
    args = parser.parse_args()
    params = from_values(inference_settings.given(args))
    fuser = build_pipeline(params).fuser  # loaded once; each run gets fresh guards, pairer and thermal range
    print(f"model: {fuser.description}; {os.cpu_count()} CPU cores; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"| size | input transport | pairs | seconds | pairs/s | x real time ({args.rate:g} Hz) |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="bench_bag_") as tmp:
        for width, height in args.sizes:
            scene = SyntheticScene(width, height)
            frames = [scene.frame(i / args.rate) for i in range(min(args.pairs, 30))]  # rendering is slow: reuse 30
            pairs = [(frames[i % len(frames)].thermal_mono16, "mono16", frames[i % len(frames)].visible)
                     for i in range(args.pairs)]
            for name, streams in INPUTS.items():
                source, out = Path(tmp, f"{width}_{name}"), Path(tmp, f"{width}_{name}_fused")
                write_pair_bag(source, pairs, PairStreams(**{**streams.__dict__, "rate_hz": args.rate}))
                fresh = FramePipeline(fuser, ThermalNormalizer(params.thermal_config()),
                                      Aligner(params.alignment_config()))
                result = fuse_bag(source, out, params, fusion=OfflineFusion(params, fresh))
                rate = result.pairs / result.seconds
                print(f"| {width}x{height} | {name} | {result.pairs} | {result.seconds:.1f} | {rate:.1f} | "
                      f"{rate / args.rate:.2f} |", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
