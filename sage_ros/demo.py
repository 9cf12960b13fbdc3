"""``sage-demo``: fuse a generated thermal + visible night scene and write pictures to look at.

    sage-demo [--out out/demo] [--frames 4] [--weights PATH] [--size 640x512]

Needs no dataset: the scene comes from ``sage_core.synthetic``. Writes one
mosaic per frame (thermal | visible | fused) and an overview of all frames.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from sage_core.data import write_image_atomic
from sage_core.errors import SageError
from sage_core.fuser import Fuser
from sage_core.synthetic import SyntheticScene
from sage_core.visualize import mosaic


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x512, got {text!r}") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sage-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--frames", type=int, default=4, help="frames of the scene to fuse")
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint (default: shipped model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--size", type=_size, default=(640, 512), help="frame size WxH (default 640x512)")
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        fuser = Fuser.from_weights(args.weights, device=args.device)
        fuser.warmup(args.size[1], args.size[0])
        scene = SyntheticScene(*args.size)
        rows, times = [], []
        for index in range(args.frames):
            frame = scene.frame(t=1.5 * index)
            started = time.perf_counter()
            fused = fuser.fuse(frame.thermal_mono8, frame.visible)
            times.append(time.perf_counter() - started)
            strip = mosaic([("thermal", frame.thermal_mono8), ("visible", frame.visible),
                            (f"fused ({fuser.name})", fused)])
            write_image_atomic(args.out / f"frame_{index:03d}.png", strip)
            rows.append(strip)
        overview = write_image_atomic(args.out / "mosaic.png", np.concatenate(rows, axis=0))
    except SageError as exc:
        print(f"sage-demo: error: {exc}", file=sys.stderr)
        return 2
    print(f"fused {args.frames} frames of {args.size[0]}x{args.size[1]} with {fuser.name} on {fuser.device}: "
          f"{1000 * float(np.median(times)):.1f} ms per frame (median)")
    print(f"look at: {overview.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
