"""How well the camera time offset is estimated from image content (sage_ros.stream.time_offset).

    python benchmarks/bench_time_offset.py [--clips ../shared/datasets/m3svd_clips] [--frames 300]

One stream of real registered video (the M3SVD clips: frame i of ir.mp4 is frame i of vis.mp4) and of the
generated night street is stamped late by a known offset (0, +-33, +-100, +-300 ms); the estimator sees
both streams as the node would (in stamp order, an update once a second of stamps) and reports its
final estimate, the error, when it first came within the tolerance (5 ms or a third of a frame period,
whichever is larger) and stayed there, and its confidence. A static scene (one frame repeated with
sensor noise) must give no estimate at all. The baseline is no estimation (offset 0 assumed): its
error is the offset itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sage_core.cameras import Camera
from sage_core.synthetic import SyntheticScene
from sage_core.video_files import clip_fps, is_clip, read_clip
from sage_ros.stream.time_offset import TimeOffsetEstimator

OFFSETS_MS = (0, 33, -33, 100, -100, 300, -300)
SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "m3svd_clips"


def clip(folder: Path, limit: int) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """(thermal gray frames, visible BGR frames, fps) of an ir.mp4 + vis.mp4 folder."""
    pairs = list(read_clip(folder, limit))
    return [ir for ir, _ in pairs], [vis for _, vis in pairs], clip_fps(folder)


def synthetic(count: int, fps: float = 30.0) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    scene = SyntheticScene(320, 256)
    frames = [scene.frame(i / fps) for i in range(count)]
    return [f.thermal_mono16 for f in frames], [f.visible for f in frames], fps


def static(count: int, fps: float = 30.0) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """One frame of the generated street repeated, with independent sensor noise per frame."""
    rng = np.random.default_rng(0)
    frame = SyntheticScene(320, 256).frame(0.0)
    thermal = [np.clip(frame.thermal_mono16 + rng.normal(0, 8, frame.thermal_mono16.shape), 0, 65535)
               .astype(np.uint16) for _ in range(count)]
    visible = [np.clip(frame.visible + rng.normal(0, 2, frame.visible.shape), 0, 255).astype(np.uint8)
               for _ in range(count)]
    return thermal, visible, fps


def run(thermal: list[np.ndarray], visible: list[np.ndarray], fps: float, offset_s: float) -> dict:
    """Feed both streams in stamp order, thermal stamped ``offset_s`` late; update once a second."""
    estimator = TimeOffsetEstimator(follow=True)
    tolerance = max(0.005, 1.0 / fps / 3)
    events = [(i / fps, Camera.RGB, image) for i, image in enumerate(visible)]
    events += [(i / fps + offset_s, Camera.THERMAL, image) for i, image in enumerate(thermal)]
    within_since, next_update, estimate = None, 1.0, None
    for stamp, camera, image in sorted(events, key=lambda e: e[0]):
        estimator.add(camera, round((100.0 + stamp) * 1e9), image)
        if stamp >= next_update:
            next_update += 1.0
            estimate = estimator.update()
            good = estimate.offset_s is not None and abs(estimate.offset_s - offset_s) <= tolerance
            within_since = (within_since if within_since is not None else stamp) if good else None
    estimate = estimator.update()
    return {"estimate": estimate, "within_s": within_since, "tolerance": tolerance, "applied": estimator.applied_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=SHARED_CLIPS, help="folder of clip folders (ir.mp4, vis.mp4)")
    parser.add_argument("--frames", type=int, default=300, help="frames per clip at most")
    args = parser.parse_args(argv)
    sources = {"generated street": synthetic(args.frames)}
    if args.clips.is_dir():
        for folder in sorted(p for p in args.clips.iterdir() if is_clip(p)):
            sources[folder.name] = clip(folder, args.frames)
    else:
        print(f"(no clips at {args.clips}: the generated street only)")
    print("| source | frames | fps | true offset (ms) | estimate (ms) | error (ms) | baseline error (ms) | "
          "within tolerance from (s) | confidence | applied (ms) | why |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (thermal, visible, fps) in sources.items():
        for offset_ms in OFFSETS_MS:
            result = run(thermal, visible, fps, offset_ms / 1000)
            e = result["estimate"]
            value = "none" if e.offset_s is None else f"{1000 * e.offset_s:+.1f}"
            error = "-" if e.offset_s is None else f"{1000 * (e.offset_s - offset_ms / 1000):+.1f}"
            within = "never" if result["within_s"] is None else f"{result['within_s']:.1f}"
            print(f"| {name} | {len(visible)} | {fps:g} | {offset_ms:+d} | {value} | {error} | {abs(offset_ms)} | "
                  f"{within} | {e.confidence:.2f} | {1000 * result['applied']:+.1f} | {e.reason} |")
    thermal, visible, fps = static(args.frames)
    e = run(thermal, visible, fps, 0.1)["estimate"]
    print(f"\nstatic scene ({len(visible)} frames, one picture with sensor noise, true offset +100 ms): "
          f"estimate {'none' if e.offset_s is None else f'{1000 * e.offset_s:+.1f} ms'} ({e.reason})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
