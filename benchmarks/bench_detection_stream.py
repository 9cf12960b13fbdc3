"""The node's second stream (detection/image, for machines): what it adds per frame.

    python benchmarks/bench_detection_stream.py [--frames 30] [--sizes 640x512 1280x1024] [--device auto]

For each size, the node's frame pipeline (``stream/frame_path.build_pipeline`` with the node's defaults: the
shipped default model for fused/image, the shipped detection model for detection/image, backend ``auto``,
the node's threads per frame in flight) fuses generated 16-bit thermal + BGR pairs (``sage_core.synthetic``)
one at a time, in turns: fused/image alone (nobody subscribes to detection/image), both streams (one
normalisation and alignment, two models), detection/image alone. Prints the median milliseconds per frame of
each and the extra cost of the second stream (both minus fused/image alone), in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from sage_core import inference_settings
from sage_core.synthetic import SyntheticScene
from sage_ros.parameters import from_values
from sage_ros.stream.frame_path import build_pipeline, inference_workers

CASES = {"fused/image alone": (True, False), "both streams": (True, True), "detection/image alone": (False, True)}


def size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--sizes", type=size, nargs="+", default=[(640, 512), (1280, 1024)])
    inference_settings.add_arguments(parser)  # the node's parameters of the same names
    args = parser.parse_args()
    params = from_values(inference_settings.given(args))
    pipeline = build_pipeline(params, inference_workers(params), machines=True)
    print(f"fused/image: {pipeline.fuser.description}\ndetection/image: {pipeline.machines.description}\n"
          f"{os.cpu_count()} CPU cores; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| size | fused/image alone (ms) | both streams (ms) | detection/image alone (ms) | extra for "
          "detection/image (ms) | both / fused alone |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for width, height in args.sizes:
        scene = SyntheticScene(width, height, seed=1)
        frames = [scene.frame(t / 10) for t in range(4)]
        times: dict[str, list[float]] = {name: [] for name in CASES}
        for index in range(args.frames + 1):  # the first round warms up every case
            frame = frames[index % len(frames)]
            for name, (people, machines) in CASES.items():
                started = time.perf_counter()
                pipeline.fuse_streams(frame.thermal_mono16, frame.visible, people=people, machines=machines)
                if index:
                    times[name].append(1000 * (time.perf_counter() - started))
        ms = {name: float(np.median(values)) for name, values in times.items()}
        extra = ms["both streams"] - ms["fused/image alone"]
        print(f"| {width}x{height} | {ms['fused/image alone']:.1f} | {ms['both streams']:.1f} | "
              f"{ms['detection/image alone']:.1f} | {extra:.1f} | {ms['both streams'] / ms['fused/image alone']:.2f} |")


if __name__ == "__main__":
    main()
