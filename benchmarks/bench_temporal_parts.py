"""Where the fused stream's instability comes from (issues 23 and 31): a decomposition on the M3SVD clips.

    python benchmarks/bench_temporal_parts.py [--clips ../shared/datasets/m3svd_clips] [--frames 60]
        [--model-file-path M]

The model (the default, or ``--model-file-path``: issue 31's analysis ran the previous default,
``git show f02dd32:sage_core/weights/affine_fuse_default.pt``) fuses as ``F = a Y + b ir + c`` with coefficient
maps at 1/4 resolution (sage_core/models/affine_fuse.py). Each row changes one thing; every row is scored by
both measures of bench_temporal.py (the warping error along the visible flow, and the two-source flow error),
as a ratio to the visible input's of the same run:

- the model fused frame by frame, the 8-bit thermal as it is (what the default stream was);
- the thermal's camera gain steps: the thermal steadied (``ThermalSteadier``, the default's 0.9) and the model on
  it; the thermal with each frame's global gain and offset against the clip's mean thermal removed (an oracle:
  it looks at the whole clip);
- from here on the thermal is steadied. The decisions: the coefficients held at the clip's mean (the cameras
  stand still in all three clips, so this is the model without any change of decision), and this frame's
  decisions applied to the clip's mean inputs (the changes of decision alone); the bounded fusion smoothing;
- the content: ``a Y + c`` and ``b ir`` alone; the rule's total gain ``a + b`` limited after the fact to 1.0 and
  1.2 everywhere (``fusion_smoothing.limit_gain``: each block's mean kept), and to 1.0 only where the picture
  moves (the default stream's ``motion_gain_limit``, without the averaging);
- the thermal one frame late (are the streams in sync?), and scored with its own flow (visible-flow table only).

A second table lists the frame pairs at which the thermal's mean grey jumps by more than 1 level (its camera's
gain control) and their share of the model's squared two-source error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from sage_core.backends import affine_cpu
from sage_core.checkpoint import load_model
from sage_core.color import gray_to_uint8, ir_to_gray, vis_to_luma_chroma
from sage_core.eval.temporal import TemporalStability
from sage_core.fusion_smoothing import CoefficientSmoother, SmoothingConfig, limit_gain
from sage_core.options import DEFAULT_WEIGHTS
from sage_core.thermal_steadying import ThermalSteadier
from sage_core.video_files import read_clip

ROOT = Path(__file__).resolve().parents[1]
JUMP = 1.0  # grey levels of the thermal's mean between two frames: its camera's gain control acting


def _coefficients(model: torch.nn.Module, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pooled = affine_cpu.pool_pair(y, t, model.scale)
    with torch.inference_mode():
        return model.from_pooled(torch.from_numpy(pooled))[0][0].numpy(), pooled


def _gain_removed(t: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The frame with its global gain and offset against the clip's mean thermal undone (least squares)."""
    design = np.stack([mean.ravel(), np.ones(mean.size)], axis=1)
    gain, offset = np.linalg.lstsq(design, t.ravel(), rcond=None)[0]
    return np.clip((t - offset) / gain, 0.0, 1.0).astype(np.float32)


def _planes(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list, list, list]:
    """Visible luminance, thermal as it is and steadied, in [0, 1]."""
    steadier = ThermalSteadier()
    ys = [vis_to_luma_chroma(vis, chroma_uint8=True).y for _, vis in pairs]
    return ys, [ir_to_gray(ir) for ir, _ in pairs], [ir_to_gray(steadier(ir)) for ir, _ in pairs]


def _rows(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[dict, list[float]]:
    """{row: summary} and the model's squared two-source error per frame pair."""
    metric, own_flow = TemporalStability(), TemporalStability()
    smoother = CoefficientSmoother(SmoothingConfig(0.8, 0.02))
    moving = CoefficientSmoother(SmoothingConfig(0.0, motion_gain_limit=1.0))
    ys, ts, steady = _planes(pairs)
    y_mean, t_mean, s_mean = (np.mean(planes, axis=0) for planes in (ys, ts, steady))
    low_mean = np.mean([_coefficients(model, y, t)[0] for y, t in zip(ys, steady)], axis=0)
    per_pair, before = [], 0.0
    for index, ((ir, vis), y, t, s) in enumerate(zip(pairs, ys, ts, steady)):
        low = _coefficients(model, y, t)[0]
        low_s, pooled_s = _coefficients(model, y, s)
        fixed = _gain_removed(t, t_mean)
        zero = np.zeros_like(low_s[0])

        def fused(coefficients: np.ndarray, luma: np.ndarray = y, thermal: np.ndarray = s) -> np.ndarray:
            return gray_to_uint8(affine_cpu.apply_coefficients(coefficients, luma, thermal))
        streams = {
            "visible": vis, "thermal": ir, "average": gray_to_uint8((y + t) / 2),
            "model": fused(low, thermal=t),
            "thermal steadied": gray_to_uint8(s), "model, thermal steadied": fused(low_s),
            "thermal, gain removed against the clip's mean (oracle)": gray_to_uint8(fixed),
            "model, thermal gain removed (oracle)": fused(_coefficients(model, y, fixed)[0], thermal=fixed),
            "steadied; decisions held at the clip's mean": fused(low_mean),
            "steadied; changes of decision alone (on the clip's mean inputs)": fused(low_s, y_mean, s_mean),
            "steadied; fusion smoothing 0.8 / 0.02": fused(smoother(low_s, pooled_s[0])),
            "steadied; a Y + c alone": fused(np.stack([low_s[0], zero, low_s[2]])),
            "steadied; b ir alone": fused(np.stack([zero, low_s[1], zero])),
            "steadied; a + b limited to 1.2": fused(limit_gain(low_s, pooled_s[0], 1.2)),
            "steadied; a + b limited to 1.0": fused(limit_gain(low_s, pooled_s[0], 1.0)),
            "steadied; a + b limited to 1.0 where the picture moves": fused(moving(low_s, pooled_s[0])),
        }
        if 0 < index < len(pairs) - 1:
            streams["thermal one frame late"] = pairs[index - 1][0]
        metric.add(vis, streams, second_reference=ir)
        own_flow.add(ir, {"thermal, its own flow": ir})
        if index:
            total = metric.streams["model"].source_squared
            per_pair.append(total - before)
            before = total
    return metric.summary() | own_flow.summary(), per_pair


def _print_rows(results: dict) -> None:
    print("| row | " + " | ".join(f"{clip}: warp error (/ visible) | two-source (/ visible)" for clip in results)
          + " |\n| --- | " + " | ".join("--- | ---" for _ in results) + " |")
    for name in next(iter(results.values())):
        cells = []
        for summary in results.values():
            row, visible = summary[name], summary["visible"]
            two = (f"{row['source_flow_error']:.2f} ({row['source_flow_error'] / visible['source_flow_error']:.2f})"
                   if "source_flow_error" in row else "")
            cells.append(f"{row['warping_error']:.2f} ({row['warping_error'] / visible['warping_error']:.2f}) | {two}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def _print_jumps(jumps: dict[str, tuple[list[float], list[float]]]) -> None:
    print(f"\n| clip | pairs whose thermal mean moves by more than {JUMP:g} grey level | of all pairs | their share of "
          "the model's squared two-source error |\n| --- | --- | --- | --- |")
    for clip, (mean_changes, per_pair) in jumps.items():
        jumped = [i for i, change in enumerate(mean_changes) if abs(change) > JUMP]
        share = sum(per_pair[i] for i in jumped) / max(sum(per_pair), 1e-12)
        listed = ", ".join(f"{i + 1} ({mean_changes[i]:+.2f})" for i in jumped) or "none"
        print(f"| {clip} | {listed} | {len(jumped)} / {len(per_pair)} | {share:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "datasets" / "m3svd_clips")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (default 60; 0: all)")
    parser.add_argument("--model-file-path", type=Path, default=DEFAULT_WEIGHTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_model(args.model_file_path)
    clips = sorted(p for p in args.clips.iterdir() if (p / "ir.mp4").is_file() and (p / "vis.mp4").is_file())
    results, jumps = {}, {}
    for clip in clips:
        pairs = list(read_clip(clip, args.frames or None))
        results[clip.name], per_pair = _rows(model, pairs)
        means = [float(ir.mean()) for ir, _ in pairs]
        jumps[clip.name] = (list(np.diff(means)), per_pair)
    print(f"model: {args.model_file_path}\n")
    _print_rows(results)
    _print_jumps(jumps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
