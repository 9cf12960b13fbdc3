"""What the default stream's steadiness costs per frame (issue 31, goal 4): 640x512 and 1280x1024, on this CPU.

    python benchmarks/bench_temporal_cost.py [--clip ../shared/datasets/m3svd_clips/1230_1202] [--frames 40]
        [--repeat 3] [--old-model out/old.pt]

The plaza clip's frames (8-bit thermal with its camera's gain steps, BGR visible), resized to each size, go
round ``--repeat`` times through, interleaved frame by frame so that a busy machine slows all alike:

- the default stream: the pipeline the node builds from its default parameters
  (``sage_ros.stream.frame_path.build_pipeline``): thermal steadying, the default model, fusion smoothing and
  the change cap;
- the same pipeline with the steadying and the smoothing off (the default model alone, 8-bit thermal as it is:
  the pipeline before issue 31, with today's model); with ``--old-model``, that model the same way;
- each mechanism alone: the steadying (``ThermalNormalizer.steady``), the smoothing (``CoefficientSmoother``
  on the model's coefficients, without the model) and the change cap (``ChangeCap`` on the fused frames, with
  the motion the smoothing measured for them).

Median milliseconds per frame, and the default stream's difference from the pipeline without the two. The
multiply-accumulates per pixel of each model (convolutions, counted by hooks; ``sage_core.eval.profiling``) are
printed first, with the released student's when ``../shared`` has it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from sage_core.backends import affine_cpu
from sage_core.change_cap import ChangeCap
from sage_core.checkpoint import load_model
from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.eval.profiling import macs_per_pixel
from sage_core.fuser import Fuser
from sage_core.fusion_smoothing import CoefficientSmoother
from sage_core.options import DEFAULT_WEIGHTS
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer
from sage_core.video_files import read_clip
from sage_ros.parameters import FusionParams
from sage_ros.stream.frame_path import build_pipeline

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT.parent / "shared" / "checkpoints" / "sage_official_student.pt"
SIZES = ((640, 512), (1280, 1024))
PLAIN = "default model alone (no steadying, no smoothing)"


Work = Callable[[int, np.ndarray, np.ndarray], object]


def _cases(params: FusionParams, old_model: Path | None,
           frames: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Work]:
    """name -> one frame's work (its index, thermal, visible); fresh state, as a new stream."""
    default = build_pipeline(params)
    plain = FramePipeline(default.fuser, ThermalNormalizer(dataclasses.replace(params.thermal_config(),
                                                                               steadying=0.0)))
    cases: dict[str, Work] = {"default stream": lambda i, ir, vis: default.fuse(ir, vis),
                              PLAIN: lambda i, ir, vis: plain.fuse(ir, vis)}
    if old_model is not None:
        old = FramePipeline(Fuser.from_weights(old_model, device=params.device), plain.normalizer)
        cases[f"{old_model.name} alone"] = lambda i, ir, vis: old.fuse(ir, vis)
    steadier = ThermalNormalizer(params.thermal_config())
    cases["thermal steadying alone"] = lambda i, ir, vis: steadier.steady(ir)
    model = load_model(DEFAULT_WEIGHTS)[0]
    coefficients = []  # the model's coefficients of every frame, computed before the timing
    for ir, vis in frames:
        pooled = affine_cpu.pool_pair(vis_to_luma_chroma(vis).y, ir_to_gray(ir), model.scale)
        with torch.inference_mode():
            coefficients.append((model.from_pooled(torch.from_numpy(pooled))[0][0].numpy(), pooled[0]))
    smoother = CoefficientSmoother(params.smoothing_config())
    cases["fusion smoothing alone"] = lambda i, ir, vis: smoother(*coefficients[i])
    planes = []  # each frame's full-resolution planes, fused frame and motion, computed before the timing
    measuring = CoefficientSmoother(params.smoothing_config())
    for (ir, vis), (low, pooled) in zip(frames, coefficients):
        y, thermal = vis_to_luma_chroma(vis).y, ir_to_gray(ir)
        fused = affine_cpu.apply_coefficients(measuring(low, pooled), y, thermal)
        planes.append((fused, y, thermal, measuring.motion))
    cap = ChangeCap(params.fusion_change_cap)

    def capped(i: int, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        if i == 0:  # each round through the frames is a new stream
            cap.reset()
        return cap(*planes[i][:3], *planes[i][3])
    cases["change cap alone"] = capped
    return cases


def time_size(pairs: list[tuple[np.ndarray, np.ndarray]], width: int, height: int, repeat: int,
              params: FusionParams, old_model: Path | None) -> dict[str, float]:
    frames = [(cv2.resize(ir, (width, height), interpolation=cv2.INTER_LINEAR),
               cv2.resize(vis, (width, height), interpolation=cv2.INTER_LINEAR)) for ir, vis in pairs]
    cases = _cases(params, old_model, frames)
    for index, (ir, vis) in enumerate(frames[:2]):  # warm-up (lazy initialisation)
        for work in cases.values():
            work(index, ir, vis)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for index, (ir, vis) in enumerate(frames):
            for name, work in cases.items():
                started = time.perf_counter()
                work(index, ir, vis)
                times[name].append(1000.0 * (time.perf_counter() - started))
    return {name: float(np.median(values)) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=ROOT.parent / "shared" / "datasets" / "m3svd_clips" / "1230_1202")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old-model", type=Path, help="a previous default model, timed alone")
    args = parser.parse_args(argv)
    params = FusionParams(device="cpu")
    models = [("default model", DEFAULT_WEIGHTS)] + ([("released student", STUDENT)] if STUDENT.is_file() else [])
    for name, path in models:
        print(f"{name} ({path.name}): {macs_per_pixel(load_model(path)[0]):,.0f} multiply-accumulates per pixel")
    pairs = list(read_clip(args.clip, args.frames))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; {len(pairs)} frames of {args.clip.name} "
          f"x {args.repeat}; median ms per frame\n")
    results = {f"{w}x{h}": time_size(pairs, w, h, args.repeat, params, args.old_model) for w, h in SIZES}
    names = list(next(iter(results.values())))
    print("| per frame | " + " | ".join(results) + " |\n| --- | " + " | ".join("---" for _ in results) + " |")
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r[name]:.2f}" for r in results.values()) + " |")
    print("| default stream - default model alone | " + " | ".join(
        f"{r['default stream'] - r[PLAIN]:+.2f}" for r in results.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
