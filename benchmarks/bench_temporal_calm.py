"""Where a calm scene's fused stream is less steady than its visible camera (issue 31, goal 3; docs/temporal.md).

    python benchmarks/bench_temporal_calm.py [--clip ../shared/datasets/m3svd_clips/1230_1202] [--start 60]
        [--picture out/temporal_calm.jpg]

After its first 60 frames the plaza clip is calm: a still camera, a few walkers. There the default stream
without the gain limit where nothing moves (``fusion_still_gain_limit`` 0) was less steady than the visible
input by the two-source flow error, with no gain step left to undo and every pixel's change already within
the larger camera's (the change cap). This measures where, frame pair by frame pair from ``--start`` on: the
two-source squared error per pixel of the visible and thermal inputs, the average, the default stream without
the still limit and with it (the node's defaults), their ratio to the visible's, how much of each stream's
excess over the visible lies on pixels where both cameras are calm (the visible's squared error at most 1 grey
level squared, the thermal's at most 4), and which quarter of the frame holds it. ``--picture`` writes visible |
thermal | the fused frame | each stream's mean excess over the visible per pixel (red: above the visible, blue:
below), for the last frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from sage_core.eval.baselines import make_baseline
from sage_core.eval.temporal import TemporalStability
from sage_core.video_files import read_clip
from sage_ros.parameters import FusionParams
from sage_ros.stream.frame_path import build_pipeline

ROOT = Path(__file__).resolve().parents[1]
WITHOUT, DEFAULT = "default stream, no still limit", "default stream (node defaults)"
CALM_VISIBLE, CALM_THERMAL = 1.0, 4.0  # squared grey levels: a pixel both cameras hold (their noise only)


def measure(clip: Path, start: int, frames: int | None) -> tuple[dict, dict, dict]:
    """Totals of the two-source squared error per stream (all pixels, calm pixels), the mean excess maps over the
    visible's, and the last frames (for the picture)."""
    pipelines = {WITHOUT: build_pipeline(FusionParams(fusion_still_gain_limit=0.0)),
                 DEFAULT: build_pipeline(FusionParams())}
    average = make_baseline("average")
    metric = TemporalStability(keep_maps=True)
    totals: dict[str, dict[str, float]] = {}
    excess: dict[str, np.ndarray] = {}
    last: dict[str, np.ndarray] = {}
    steps = 0
    for index, (ir, vis) in enumerate(read_clip(clip, frames)):
        streams = {name: pipeline.fuse(ir, vis) for name, pipeline in pipelines.items()}
        if index < start:  # the pipelines run from the clip's first frame, as in the node
            continue
        metric.add(vis, {"visible": vis, "thermal": ir, "average": average.fuse(ir, vis), **streams},
                   second_reference=ir)
        last = {"visible": vis, "thermal": ir, DEFAULT: streams[DEFAULT]}
        if not metric.maps:
            continue
        steps += 1
        maps = metric.maps
        calm = (maps["visible"] <= CALM_VISIBLE) & (maps["thermal"] <= CALM_THERMAL)
        for name, errors in maps.items():
            t = totals.setdefault(name, {"all": 0.0, "calm": 0.0, "calm pixels": 0.0, "pixels": 0.0})
            t["all"] += float(errors.sum(dtype=np.float64))
            t["calm"] += float(errors[calm].sum(dtype=np.float64))
            t["calm pixels"] += float(calm.sum())
            t["pixels"] += float(errors.size)
            excess[name] = excess.get(name, 0.0) + (errors - maps["visible"])
    return totals, {name: e / max(steps, 1) for name, e in excess.items()}, last


def report(totals: dict, excess: dict) -> None:
    visible = totals["visible"]
    print("| stream | two-source error / visible's | excess over the visible | of it on calm pixels | "
          "mean excess per pixel by quarter (rows: top to bottom) |")
    print("| --- | --- | --- | --- | --- |")
    for name, t in totals.items():
        over = t["all"] - visible["all"]
        calm_over = t["calm"] - visible["calm"]
        share = f"{100 * calm_over / over:.0f} %" if over > 0 else "-"
        e = excess[name]
        h, w = e.shape
        quarters = " / ".join(" ".join(f"{e[r * h // 4:(r + 1) * h // 4, c * w // 4:(c + 1) * w // 4].mean():+.2f}"
                                       for c in range(4)) for r in range(4))
        print(f"| {name} | {np.sqrt(t['all'] / visible['all']):.3f} | {over / t['pixels']:+.3f} grey levels^2 a "
              f"pixel | {share} | {quarters} |")
    calm = visible["calm pixels"] / visible["pixels"]
    print(f"\ncalm pixels (visible's squared error <= {CALM_VISIBLE:g}, thermal's <= {CALM_THERMAL:g}): "
          f"{100 * calm:.0f} % of the scored pixels")


def picture(last: dict, excess: dict, path: Path) -> None:
    """visible | thermal | fused (top); each fused stream's mean excess over the visible (bottom), half size."""
    def tile(image: np.ndarray) -> np.ndarray:
        image = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)

    def heat(e: np.ndarray, title: str) -> np.ndarray:
        coloured = cv2.applyColorMap(np.clip(128 + 20 * e, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        out = tile(coloured)
        cv2.putText(out, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return out

    top = np.hstack([tile(last["visible"]), tile(last["thermal"]), tile(last[DEFAULT])])
    bottom = np.hstack([heat(excess["average"], "average"), heat(excess[WITHOUT], "no still limit"),
                        heat(excess[DEFAULT], "default (still limit 1.0)")])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([top, bottom]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=ROOT.parent / "shared" / "datasets" / "m3svd_clips" / "1230_1202")
    parser.add_argument("--start", type=int, default=60, help="first frame scored (the pipelines run from frame 0)")
    parser.add_argument("--frames", type=int, default=0, help="frames read (0: all)")
    parser.add_argument("--picture", type=Path, help="write the picture here (JPEG)")
    args = parser.parse_args(argv)
    if not (args.clip / "ir.mp4").is_file():
        raise SystemExit(f"bench_temporal_calm: no ir.mp4 in {args.clip} (the M3SVD clips are in ../shared)")
    started = time.perf_counter()
    totals, excess, last = measure(args.clip, args.start, args.frames or None)
    if "visible" not in totals:
        raise SystemExit(f"bench_temporal_calm: fewer than two frames from frame {args.start} of {args.clip}")
    print(f"{args.clip.name}, frames {args.start} on ({time.perf_counter() - started:.0f} s)\n")
    report(totals, excess)
    if args.picture:
        picture(last, excess, args.picture)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
