"""Temporal stability of fused video on the real M3SVD clips (issues 23 and 31; docs/temporal.md).

    python benchmarks/bench_temporal.py [--clips ../shared/datasets/m3svd_clips] [--frames 60] [--parts]
        [--model-file-path M ...] [--default-model M] [--quality] [--tone-rows]

For each clip (``CLIP/ir.mp4`` + ``CLIP/vis.mp4``, frame i with frame i), every stream's flow-based warping
error (the visible flow; sage_core.eval.temporal), relative error and brightness flicker, then every stream's
two-source flow error (per pixel the better of the visible and the thermal camera's own flow), each with its
ratio to the visible input's from the same run. The streams: the visible and thermal inputs, the average,
GFF, the released student, the default model fused frame by frame on its own (``Fuser.fuse``, the 8-bit
thermal as it is: the default stream before issue 31), and **the default stream**: the pipeline the node builds
from its default parameters (``sage_ros.stream.frame_path.build_pipeline(FusionParams())``: the 8-bit thermal's
gain steps steadied, the default model, its coefficients averaged along the motion and their total gain limited
(where the picture moves and where it does not), the fused frame's change capped by its cameras';
sage_core/thermal_steadying.py, sage_core/fusion_smoothing.py, sage_core/change_cap.py). Last, for each clip, the
default stream's two-source error against the larger of the two inputs' (issue 31's goal 2) and against
the visible's (goal 3).

``--default-model M`` puts a model file in the shipped default's place (the default rows: what the stream would
be with it). ``--parts`` adds the default model with one run-time mechanism at a time (the thermal steadying,
the coefficient averaging, the gain limit where the picture moves, the one where it does not, the change cap),
and the default stream without the gain limits, without the one where nothing moves, without the change cap, and
with the thermal's gain steps fitted as lines (the steadier before its curve). ``--model-file-path M``
(repeatable) adds a row per model file, fused on its own.
``--quality`` scores every 6th frame of the default model alone and of the default stream with the fusion metrics
(what the stream's mechanisms cost a frame). ``--tone-rows`` adds the clips' thermal normalised once more by the
percentile and plateau methods, as if it were a raw stream, and the default model on it (issue 23's
tone-mapping share).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np

from sage_core import Fuser
from sage_core.eval.baselines import make_baseline
from sage_core.eval.metrics import all_metrics
from sage_core.eval.temporal import TemporalStability
from sage_core.fuser import LuminanceFuser
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig
from sage_core.thermal_steadying import SteadyingConfig, ThermalSteadier
from sage_core.video_files import read_clip
from sage_ros.parameters import FusionParams
from sage_ros.stream.frame_path import build_pipeline

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT.parent / "shared" / "checkpoints" / "sage_official_student.pt"
TONE_METHODS = ("percentile", "plateau")
DEFAULT_STREAM = "default stream (node defaults)"
WITHOUT_STILL_LIMIT = "default stream without the gain limit where nothing moves"
QUALITY_EVERY = 6
QUALITY_KEYS = ("VIF", "Qabf", "SSIM", "MI", "SD")


def _unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


def default_pipelines(params: FusionParams, parts: bool) -> dict[str, FramePipeline]:
    """Fresh pipelines (their state is per clip): the node's defaults, and with ``parts`` one mechanism each."""
    pipelines = {DEFAULT_STREAM: build_pipeline(params)}
    if parts:
        fuser = pipelines[DEFAULT_STREAM].fuser
        steady = params.thermal_config()
        plain = dataclasses.replace(steady, steadying=0.0)
        smoothing = params.smoothing_config()
        uncapped = dataclasses.replace(smoothing, change_cap=0.0)
        no_limits = dataclasses.replace(uncapped, motion_gain_limit=0.0, still_gain_limit=0.0)
        pipelines["default model + thermal steadying"] = FramePipeline(fuser, ThermalNormalizer(steady))
        pipelines["default model + coefficient averaging"] = FramePipeline(fuser, ThermalNormalizer(plain),
                                                                           smoothing=no_limits)
        pipelines["default model + gain limit where it moves"] = FramePipeline(
            fuser, ThermalNormalizer(plain), smoothing=dataclasses.replace(no_limits, strength=0.0,
                                                                           motion_gain_limit=1.0))
        pipelines["default model + gain limit where nothing moves"] = FramePipeline(
            fuser, ThermalNormalizer(plain), smoothing=dataclasses.replace(no_limits, strength=0.0,
                                                                           still_gain_limit=1.0))
        pipelines["default model + change cap"] = FramePipeline(
            fuser, ThermalNormalizer(plain), smoothing=dataclasses.replace(no_limits, strength=0.0,
                                                                           change_cap=smoothing.change_cap))
        pipelines["default stream without the gain limits"] = FramePipeline(
            fuser, ThermalNormalizer(steady), smoothing=dataclasses.replace(smoothing, motion_gain_limit=0.0,
                                                                            still_gain_limit=0.0))
        pipelines[WITHOUT_STILL_LIMIT] = FramePipeline(
            fuser, ThermalNormalizer(steady), smoothing=dataclasses.replace(smoothing, still_gain_limit=0.0))
        pipelines["default stream without the change cap"] = FramePipeline(
            fuser, ThermalNormalizer(steady), smoothing=uncapped)
        line = ThermalNormalizer(steady)
        line.steadier = ThermalSteadier(SteadyingConfig(steady.steadying, curve_from=math.inf))
        pipelines["default stream, its gain steps fitted as lines"] = FramePipeline(fuser, line, smoothing=smoothing)
    return pipelines


def measure_clip(folder: Path, fusers: dict[str, LuminanceFuser], pipelines: dict[str, FramePipeline],
                 frames: int | None, tone_rows: bool, quality: dict | None = None) -> dict[str, dict[str, float]]:
    """Every stream of one clip through one TemporalStability (the visible frames give the motion, the
    thermal frames the second flow of the two-source error); with ``quality`` (a dict), the fusion metrics of
    every ``QUALITY_EVERY``-th frame of the default model alone and of the default stream go into it."""
    metric = TemporalStability()
    normalizers = {m: ThermalNormalizer(ThermalNormalizerConfig(m)) for m in TONE_METHODS} if tone_rows else {}
    default = fusers["default model alone"]
    for index, (ir, vis) in enumerate(read_clip(folder, frames)):
        streams = {"visible": vis, "thermal": ir}
        streams.update({name: fuser.fuse(ir, vis) for name, fuser in fusers.items()})
        streams.update({name: pipeline.fuse(ir, vis) for name, pipeline in pipelines.items()})
        for method, normalizer in normalizers.items():
            unit = normalizer(ir)
            streams[f"thermal, {method}"] = _unit_to_uint8(unit)
            streams[f"default model, thermal {method}"] = default.fuse(unit, vis)
        metric.add(vis, streams, second_reference=ir)
        if quality is not None and index % QUALITY_EVERY == QUALITY_EVERY - 1:
            for name in ("default model alone", DEFAULT_STREAM, WITHOUT_STILL_LIMIT):
                if name in streams:
                    quality.setdefault(name, []).append(all_metrics(streams[name], ir, vis))
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


def print_goals(results: dict[str, dict[str, dict[str, float]]], stream: str) -> None:
    """Issue 31's goals 2 and 3 for one stream, clip by clip, by the two-source flow error."""
    print(f"\n| clip | {stream} | visible | thermal | / larger input (goal 2: <= 1) | / visible (goal 3: <= 1) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clip, summary in results.items():
        fused, visible, thermal = (summary[name]["source_flow_error"] for name in (stream, "visible", "thermal"))
        print(f"| {clip} | {fused:.3f} | {visible:.3f} | {thermal:.3f} | {fused / max(visible, thermal):.3f} | "
              f"{fused / visible:.3f} |")


def print_quality(quality: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    """Per-frame fusion metrics on the clips' frames: what the stream's mechanisms cost a frame's quality."""
    print("\n| clip | stream | " + " | ".join(QUALITY_KEYS) + " |\n| --- | --- | " +
          " | ".join("---" for _ in QUALITY_KEYS) + " |")
    for clip, streams in quality.items():
        alone = {k: float(np.mean([m[k] for m in streams["default model alone"]])) for k in QUALITY_KEYS}
        for name, scores in streams.items():
            means = {k: float(np.mean([m[k] for m in scores])) for k in QUALITY_KEYS}
            print(f"| {clip} | {name} | " + " | ".join(
                f"{means[k]:.3f} ({100 * (means[k] / alone[k] - 1):+.1f} %)" for k in QUALITY_KEYS) + " |")
    print(f"\nfusion metrics (sage_core.eval.metrics, against the clip's own thermal and visible frames) of every "
          f"{QUALITY_EVERY}th frame; in brackets against the default model alone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "datasets" / "m3svd_clips")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (default 60; 0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parts", action="store_true", help="the default model with one mechanism at a time")
    parser.add_argument("--tone-rows", action="store_true", help="the clips' thermal normalised once more")
    parser.add_argument("--quality", action="store_true",
                        help="fusion metrics of every 6th frame, the default model alone and the default stream")
    parser.add_argument("--model-file-path", type=Path, action="append", default=[],
                        help="a further model to score on its own (a row named after its file); repeatable")
    parser.add_argument("--default-model", type=Path, help="a model file in the default's place (the default rows)")
    args = parser.parse_args(argv)
    params = FusionParams(device=args.device, model_file_path=str(args.default_model or ""))
    if not default_pipelines(params, False)[DEFAULT_STREAM].fuser.filters_coefficients:
        print("note: the default model's backend exposes no coefficients here: the fusion smoothing does nothing")
    fusers: dict[str, LuminanceFuser] = {"average": make_baseline("average"), "gff": make_baseline("gff")}
    if STUDENT.is_file():
        fusers["released student"] = Fuser.from_weights(STUDENT, device=args.device)
    fusers["default model alone"] = Fuser.from_options(params.inference_options())
    for path in args.model_file_path:
        fusers[str(path)] = Fuser.from_weights(path, device=args.device)
    clips = sorted(p for p in args.clips.iterdir() if (p / "ir.mp4").is_file() and (p / "vis.mp4").is_file())
    quality: dict[str, dict] = {clip.name: {} for clip in clips}
    results = {clip.name: measure_clip(clip, fusers, default_pipelines(params, args.parts), args.frames or None,
                                       args.tone_rows, quality[clip.name] if args.quality else None)
               for clip in clips}
    print_table(results)
    print_source_table(results)
    print_goals(results, DEFAULT_STREAM)
    if args.quality:
        print_quality(quality)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
