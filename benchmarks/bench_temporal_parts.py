"""Where the fused stream's instability comes from (issue 23, goal 2): a decomposition on the M3SVD clips.

    python benchmarks/bench_temporal_parts.py [--clips ../shared/datasets/m3svd_clips] [--frames 60]

The shipped model fuses as ``F = a Y + b ir + c`` with coefficient maps at 1/4 resolution
(sage_core/models/affine_fuse.py). Each row changes one thing and is scored with the same warping error
(sage_core/eval/temporal.py; the flow on the visible stream) as bench_temporal.py:

- the two parts of the model's output alone (``a Y``, ``b ir``, with this frame's maps);
- the coefficients frozen at the first frame (no frame-to-frame variation of the decisions at all: an upper
  bound of what smoothing them could give, with the ghosting of a moving scene);
- an exponential moving average of the coefficient maps, not motion-aware (0.9: what an aggressive, lagging
  smoothing gives), and the shipped bounded one (``CoefficientSmoother`` 0.8 / 0.02, motion-compensated);
- one spatially constant rule per frame (the maps' means: the model's global balance without its local
  decisions);
- the thermal input scored with its own flow, and shifted by one frame (is it in sync with the visible?).
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
from sage_core.fusion_smoothing import CoefficientSmoother, SmoothingConfig
from sage_core.options import DEFAULT_WEIGHTS
from sage_core.video_files import read_clip

ROOT = Path(__file__).resolve().parents[1]


def _rows(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    metric, own_flow = TemporalStability(), TemporalStability()
    smoother = CoefficientSmoother(SmoothingConfig(0.8, 0.02))
    first = average = None
    for index, (ir, vis) in enumerate(pairs):
        y, t = vis_to_luma_chroma(vis, chroma_uint8=True).y, ir_to_gray(ir)
        pooled = affine_cpu.pool_pair(y, t, model.scale)
        with torch.inference_mode():
            low = model.from_pooled(torch.from_numpy(pooled))[0][0].numpy()
        first = low if first is None else first
        average = low if average is None else 0.9 * average + 0.1 * low
        zero = np.zeros_like(low[0])
        a_y = affine_cpu.apply_coefficients(np.stack([low[0], zero, zero]), y, t)  # a Y, upsampled as the model does
        b_ir = affine_cpu.apply_coefficients(np.stack([zero, low[1], zero]), y, t)
        means = low.reshape(3, -1).mean(axis=1)
        streams = {"visible": vis, "thermal": ir, "average": gray_to_uint8((y + t) / 2),
                   "model": gray_to_uint8(affine_cpu.apply_coefficients(low, y, t)),
                   "a Y alone": gray_to_uint8(a_y), "b ir alone": gray_to_uint8(b_ir),
                   "coefficients frozen at frame 0": gray_to_uint8(affine_cpu.apply_coefficients(first, y, t)),
                   "coefficients EMA 0.9, not motion-aware": gray_to_uint8(
                       affine_cpu.apply_coefficients(average, y, t)),
                   "coefficients smoothed (shipped, 0.8 / 0.02)": gray_to_uint8(
                       affine_cpu.apply_coefficients(smoother(low, pooled[0]), y, t)),
                   "one constant rule per frame (maps' means)": gray_to_uint8(means[0] * y + means[1] * t + means[2])}
        if 0 < index < len(pairs) - 1:
            streams["thermal one frame late"] = pairs[index - 1][0]
        metric.add(vis, streams)
        own_flow.add(ir, {"thermal, its own flow": ir})
    return metric.summary() | own_flow.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared" / "datasets" / "m3svd_clips")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (default 60; 0: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_model(DEFAULT_WEIGHTS)
    model.eval()
    clips = sorted(p for p in args.clips.iterdir() if (p / "ir.mp4").is_file() and (p / "vis.mp4").is_file())
    results = {clip.name: _rows(model, list(read_clip(clip, args.frames or None))) for clip in clips}
    print("| stream | " + " | ".join(f"{clip}: warp error (/ visible)" for clip in results) + " |")
    print("| --- | " + " | ".join("---" for _ in results) + " |")
    for name in next(iter(results.values())):
        cells = [f"{r[name]['warping_error']:.2f} ({r[name]['warping_error'] / r['visible']['warping_error']:.2f})"
                 for r in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
