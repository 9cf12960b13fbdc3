"""Thermal tone mapping (issues 23 and 31): the pumping table, drift, raw formats and cost, percentile vs plateau;
8-bit streams keeping their camera's tone.

    python benchmarks/bench_tone_mapping.py [--repeat 30] [--drift-frames 600] [--clips ../shared/datasets/m3svd_clips]

1. Issue 23's scene (640 x 512, 16-bit, background 7400-7800 counts, a person at 8300, from frame 30 a hot
   engine block at 11000 counts over 12 % of the view): background mean grey and std, the person's grey,
   its surroundings' grey and the share of its pixels clipped white, for frames 0-29 (mean), 30, 35, 59;
   percentile, plateau (its default linear share) and plateau with no linear share (pure equalisation).
2. Slow drift: one minute of the scene drifting by 5 % of its span, as ``--drift-frames`` frames: the
   largest swing of each statistic over the minute.
3. The same scene as 8-bit, 12-bit and float temperatures.
3b. The demo's night street: people above a warm road, in the normalised thermal and in the fused frame of the
   node's default stream, for each normalisation (what the plateau's linear share is for).
4. Cost per frame (median of ``--repeat`` calls, interleaved, state carried between calls as in a stream) at 640 x 512
   and 1280 x 1024, 16-bit and float, with the plateau method's ratio to the percentile method's.
5. 8-bit streams through the default normaliser's 8-bit step (``ThermalNormalizer.steady``, which
   ``FramePipeline.thermal_unit`` calls: an 8-bit stream is kept as its camera tone-mapped it, only its camera's
   gain steps are steadied): the scene as 8-bit, and the
   M3SVD clips' thermal (60 frames each) when ``--clips`` exists: frames returned as they are, and how far the
   others are from the camera's picture.

The method marked "(default)" is what the node and ``sage-fuse`` use for raw (16-bit and float) streams.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig
from sage_core.thermal_scene import HotObjectScene, grey_stats
from sage_core.video_files import read_clip

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_METHOD = ThermalNormalizerConfig().method

METHODS = ("percentile", "plateau")
#: The plateau curve with no linear share: pure equalisation (the raw-stream default of issue 31, before the share).
PURE_PLATEAU = "plateau, linear 0"
FORMATS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "16-bit": lambda raw: raw,
    "12-bit": lambda raw: np.clip((raw.astype(np.float64) - 6000) * 0.8, 0, 4095).round().astype(np.uint16),
    "8-bit": lambda raw: np.clip((raw.astype(np.float64) - 7000) * (255 / 4500), 0, 255).round().astype(np.uint8),
    "float K": lambda raw: raw.astype(np.float32) * np.float32(0.01) + np.float32(220.0),
}


def _config(method: str) -> ThermalNormalizerConfig:
    return ThermalNormalizerConfig("plateau", plateau_linear=0.0) if method == PURE_PLATEAU else \
        ThermalNormalizerConfig(method)


def play(scene: HotObjectScene, method: str, frames: int, transform=FORMATS["16-bit"]) -> list[dict]:
    normalizer = ThermalNormalizer(_config(method))
    return [grey_stats(scene, normalizer(transform(scene.frame(i)))) for i in range(frames)]


def pumping_table(scene: HotObjectScene) -> None:
    print("## The hot object entering (640 x 512, 16-bit)\n")
    print("| method | frame | background mean grey | background std | person grey | surroundings | person "
          "clipped |\n| --- | --- | --- | --- | --- | --- | --- |")
    for method in (*METHODS, PURE_PLATEAU):
        stats = play(scene, method, 60)
        rows = [("0-29", {k: float(np.mean([s[k] for s in stats[:30]])) for k in stats[0]})]
        rows += [(str(i), stats[i]) for i in (30, 35, 59)]
        label = f"{method} (default)" if method == DEFAULT_METHOD else method
        for name, s in rows:
            print(f"| {label} | {name} | {s['background_mean']:.1f} | {s['background_std']:.1f} | "
                  f"{s['person']:.1f} | {s['surroundings']:.1f} | {100 * s['person_clipped']:.0f} % |")
        before, after = rows[0][1], stats[59]
        print(f"| {label} | change | {after['background_mean'] - before['background_mean']:+.1f} | "
              f"{100 * (after['background_std'] / before['background_std'] - 1):+.0f} % | "
              f"{after['person'] - before['person']:+.1f} | | |")
    print()


def drift_table(frames: int) -> None:
    span = 8300 - 7400
    scene = HotObjectScene(hot_from=10 ** 9, drift_per_frame=0.05 * span / frames)
    print(f"## Slow drift: 5 % of the span ({0.05 * span:.0f} counts) over one minute, {frames} frames\n")
    print("| method | background mean swing | background std swing | person swing | largest frame-to-frame "
          "change of the background mean |\n| --- | --- | --- | --- | --- |")
    for method in METHODS:
        stats = play(scene, method, frames)
        swing = {k: float(np.ptp([s[k] for s in stats])) for k in ("background_mean", "background_std", "person")}
        step = float(np.abs(np.diff([s["background_mean"] for s in stats])).max())
        print(f"| {method} | {swing['background_mean']:.2f} | {swing['background_std']:.2f} | "
              f"{swing['person']:.2f} | {step:.2f} |")
    print()


def formats_table(scene: HotObjectScene) -> None:
    print("## Raw formats (plateau): the same scene as other raw formats\n")
    print("| format | background mean 0-29 -> 59 | background std 0-29 -> 59 | person - surroundings 0-29 / 59 |"
          "\n| --- | --- | --- | --- |")
    for name, transform in FORMATS.items():
        stats = play(scene, "plateau", 60, transform)
        b = {k: float(np.mean([s[k] for s in stats[:30]])) for k in stats[0]}
        a = stats[59]
        print(f"| {name} | {b['background_mean']:.1f} -> {a['background_mean']:.1f} | {b['background_std']:.1f} -> "
              f"{a['background_std']:.1f} | {b['person'] - b['surroundings']:.0f} / "
              f"{a['person'] - a['surroundings']:.0f} |")
    print()


def _cost_ms(frames: list[np.ndarray], repeat: int) -> dict[str, float]:
    """Median ms per call of each method, the calls interleaved so that a busy machine slows both alike."""
    normalizers = {m: ThermalNormalizer(ThermalNormalizerConfig(m)) for m in METHODS}
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for index in range(len(frames) + repeat):
        frame = frames[index % len(frames)]  # distinct frames: no repeat shortcut
        for method, normalizer in normalizers.items():
            started = time.perf_counter()
            normalizer(frame)
            if index >= len(frames):  # the first round only builds the stream's state, as in the node
                times[method].append(time.perf_counter() - started)
    return {m: 1000.0 * float(np.median(t)) for m, t in times.items()}


def cost_table(repeat: int) -> None:
    print(f"## Cost per frame (median of {repeat}, ms; this machine)\n")
    print("| size | input | percentile | plateau | plateau / percentile |\n| --- | --- | --- | --- | --- |")
    for width, height in ((640, 512), (1280, 1024)):
        scene = HotObjectScene(width, height)
        raw = [scene.frame(i) for i in (28, 29, 30, 31)]
        for name, frames in (("uint16", raw), ("float32", [FORMATS["float K"](f) for f in raw])):
            ms = _cost_ms(frames, repeat)
            print(f"| {width}x{height} | {name} | {ms['percentile']:.2f} | {ms['plateau']:.2f} | "
                  f"{ms['plateau'] / ms['percentile']:.2f} |")
    print()


def _kept_tone_row(name: str, frames: list[np.ndarray]) -> None:
    """One 8-bit stream through the default normaliser's 8-bit step (what ``FramePipeline.thermal_unit`` calls)."""
    normalizer = ThermalNormalizer()
    kept, differences = 0, []
    for frame in frames:
        unit = normalizer.steady(frame)
        if unit is frame:
            kept += 1
        else:
            differences.append(np.abs(unit.astype(np.float64) * 255.0 - frame).ravel())
    moved = np.concatenate(differences) if differences else np.zeros(1)
    print(f"| {name} | {kept} / {len(frames)} | {len(differences)} | {float(moved.mean()):.2f} | "
          f"{float(np.percentile(moved, 99)):.1f} | {normalizer.steadier.steps} |")


def kept_tone_table(scene: HotObjectScene, clips: Path) -> None:
    print("## 8-bit streams keep their camera's tone (the default normaliser's 8-bit step)\n")
    print("| stream | frames returned as they are | frames steadied | their mean difference from the camera's "
          "grey | 99th percentile | gain steps acted on |\n| --- | --- | --- | --- | --- | --- |")
    _kept_tone_row("the hot-object scene as 8-bit (60 frames)",
                   [FORMATS["8-bit"](scene.frame(i)) for i in range(60)])
    if clips.is_dir():
        for clip in sorted(p for p in clips.iterdir() if (p / "ir.mp4").is_file()):
            _kept_tone_row(f"M3SVD {clip.name} thermal (60 frames)", [ir for ir, _ in read_clip(clip, 60)])
    print()


def street_table() -> None:
    """The demo's night street (16-bit): how far the people stand out from the warm road, in the normalised
    thermal and in the default stream's fused frame (the node's default parameters but the normalisation)."""
    import dataclasses

    import cv2

    from sage_core.synthetic import SyntheticScene
    from sage_ros.parameters import FusionParams
    from sage_ros.stream.frame_path import build_pipeline

    print("## A hot target above a warm background: the demo's night street (640 x 512, 16-bit, frame 12)\n")
    print("| thermal normalisation | thermal: road / people | fused: road / people | fused: people - road |"
          "\n| --- | --- | --- | --- |")
    scene = SyntheticScene(640, 512)
    for method in (*METHODS, PURE_PLATEAU):
        config = _config(method)
        params = dataclasses.replace(FusionParams(), thermal_normalization=config.method,
                                     thermal_plateau_linear=config.plateau_linear)
        pipeline, normalizer = build_pipeline(params), ThermalNormalizer(config)
        for index in range(12):
            pair = scene.frame(index * 0.1)
            fused = pipeline.fuse(pair.thermal_mono16, pair.visible)
            thermal = normalizer(pair.thermal_mono16) * 255.0
        fused = cv2.cvtColor(np.asarray(fused), cv2.COLOR_BGR2GRAY).astype(np.float64)
        people = pair.thermal > 0.8
        road = np.zeros_like(people)
        road[int(0.55 * scene.height) + 5:] = True
        road &= pair.thermal < 0.5
        label = f"{method} (default)" if method == DEFAULT_METHOD else method
        print(f"| {label} | {thermal[road].mean():.0f} / {thermal[people].mean():.0f} | {fused[road].mean():.0f} / "
              f"{fused[people].mean():.0f} | {fused[people].mean() - fused[road].mean():.0f} |")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per case (default 30)")
    parser.add_argument("--drift-frames", type=int, default=600, help="frames of the drift minute (default 600)")
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "datasets" / "m3svd_clips")
    args = parser.parse_args(argv)
    scene = HotObjectScene()
    pumping_table(scene)
    drift_table(args.drift_frames)
    formats_table(scene)
    street_table()
    cost_table(args.repeat)
    kept_tone_table(scene, args.clips)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
