"""Temporal stability of fused video on the real M3SVD clips (issue 23, goal 2).

    python benchmarks/bench_temporal.py [--clips ../shared/datasets/m3svd_clips] [--frames 60] [--device cpu]

For each clip (``CLIP/ir.mp4`` + ``CLIP/vis.mp4``, frame i with frame i): the flow-based warping error
(sage_core.eval.temporal; docs/temporal.md) and the brightness flicker of the visible and thermal inputs,
the average, GFF, the default model and the released student, each fused frame by frame, with the
fused stream's ratio to the visible input's (the goal: <= 1) and to the average's, both measured in the same run;
a second table gives every stream's two-source flow error (the thermal as second reference: per pixel the
better of the visible and the thermal flow) and its ratio to the visible input's;
then the default model through ``FramePipeline`` with the fusion smoothing (``fusion_smoothing`` 0.8,
``fusion_smoothing_max_change`` 0.02: sage_core/fusion_smoothing.py). Then the thermal tone mapping's share: the
clips' thermal is 8-bit and already tone-mapped by the camera, so it is normalised once more by each
method of ``ThermalNormalizer`` (percentile, plateau), as the node would normalise a raw stream, and fused
by the default model. ``--frames`` limits the frames per clip (0: all); ``--model-file-path M`` (repeatable) adds
a row per model file (e.g. one trained with ``loss.stability``, docs/temporal.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sage_core import Fuser, InferenceOptions
from sage_core.eval.baselines import make_baseline
from sage_core.eval.temporal import TemporalStability
from sage_core.fuser import LuminanceFuser
from sage_core.fusion_smoothing import SmoothingConfig
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig
from sage_core.video_files import read_clip

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT.parent / "shared" / "checkpoints" / "sage_official_student.pt"
TONE_METHODS = ("percentile", "plateau")
SMOOTHING = SmoothingConfig(strength=0.8, max_change=0.02)
SMOOTHED = "default model, smoothed (0.8, 0.02)"


def _unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


def measure_clip(folder: Path, fusers: dict[str, LuminanceFuser], default: Fuser,
                 frames: int | None) -> dict[str, dict[str, float]]:
    """Every stream of one clip through one TemporalStability (the visible frames give the motion, the
    thermal frames the second flow of the two-source error)."""
    metric = TemporalStability()
    normalizers = {m: ThermalNormalizer(ThermalNormalizerConfig(m)) for m in TONE_METHODS}
    smoothed = FramePipeline(default, smoothing=SMOOTHING)  # 8-bit thermal: passed through, as the node does
    for ir, vis in read_clip(folder, frames):
        streams = {"visible": vis, "thermal": ir}
        streams.update({name: fuser.fuse(ir, vis) for name, fuser in fusers.items()})
        streams[SMOOTHED] = smoothed.fuse(ir, vis)
        for method, normalizer in normalizers.items():
            unit = normalizer(ir)
            streams[f"thermal, {method}"] = _unit_to_uint8(unit)
            streams[f"default, thermal {method}"] = default.fuse(unit, vis)
        metric.add(vis, streams, second_reference=ir)
    return metric.summary()


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    names = list(next(iter(results.values())))
    print("| stream | " + " | ".join(f"{clip}: warp error (/ visible, / average) | relative | flicker"
                                     for clip in results) + " |")
    print("| --- | " + " | ".join("--- | --- | ---" for _ in results) + " |")
    for name in names:
        cells = []
        for summary in results.values():
            s = summary[name]
            visible, average = summary["visible"]["warping_error"], summary["average"]["warping_error"]
            cells.append(f"{s['warping_error']:.2f} ({s['warping_error'] / visible:.2f}, "
                         f"{s['warping_error'] / average:.2f}) | {s['relative_error']:.3f} | "
                         f"{s['brightness_flicker']:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    pairs = {clip: int(summary["visible"]["pairs"]) for clip, summary in results.items()}
    print(f"\nframe pairs: {pairs}; warp error: RMS grey levels over non-occluded pixels, flow (DIS) on the "
          "visible stream; relative: warp error / the stream's contrast (RMS of its frames' std); flicker: mean "
          "|change of the mean grey| between frames")


def print_source_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    """The two-source flow error of every stream, with its ratio to the visible input's."""
    names = list(next(iter(results.values())))
    print("\n| stream | " + " | ".join(f"{clip}: two-source flow error (/ visible)" for clip in results) + " |")
    print("| --- | " + " | ".join("---" for _ in results) + " |")
    for name in names:
        cells = [f"{summary[name]['source_flow_error']:.2f} "
                 f"({summary[name]['source_flow_error'] / summary['visible']['source_flow_error']:.2f})"
                 for summary in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\ntwo-source flow error: RMS grey levels, per pixel the smaller squared error under the visible and "
          "the thermal flow (DIS, each with its own forward-backward mask), over pixels valid under either")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "datasets" / "m3svd_clips")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (default 60; 0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-file-path", type=Path, action="append", default=[],
                        help="a further model to score (a row named after its file); repeatable")
    args = parser.parse_args(argv)
    default = Fuser.from_options(InferenceOptions(device=args.device))
    if not FramePipeline(default, smoothing=SMOOTHING).smoothing_active:
        print(f"note: {default.description} exposes no coefficients: the smoothed row is the model's own")
    fusers: dict[str, LuminanceFuser] = {"average": make_baseline("average"), "gff": make_baseline("gff"),
                                         "default model": default}
    if STUDENT.is_file():
        fusers["released student"] = Fuser.from_weights(STUDENT, device=args.device)
    for path in args.model_file_path:
        fusers[str(path)] = Fuser.from_weights(path, device=args.device)
    clips = sorted(p for p in args.clips.iterdir() if (p / "ir.mp4").is_file() and (p / "vis.mp4").is_file())
    results = {clip.name: measure_clip(clip, fusers, default, args.frames or None) for clip in clips}
    print_table(results)
    print_source_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
