"""What a detector-in-the-loop training step costs, before and after issue 30, measured in one process.

    python benchmarks/bench_detection_training.py [--rounds 12] [--config training/configs/detection_fuse.yaml]

Three ways of running the frozen CenterNet in training, timed in turns (round robin, so load from other
processes falls on all of them alike), on msrs180 train-split pairs:

- ``before``: the detection term as issue 22 left it (``teacher.detection``, ``affine_fuse_detector.yaml``): a
  whole 480x640 frame, batch 1, the TF.js graph op by op in NHWC; the visible and thermal targets recomputed
  (two passes without gradient), then the fused frame forward and backward (the AffineFuse default's output);
- ``before, compiled``: the same step with the graph compiled to NCHW (``eval/tfjs_compiled.py``);
- ``after``: a step of ``training/train_detection.py`` (targets from the cache, windows of 256x256 at the
  detector's scale, a batch of ``optim.batch`` windows from ``optim.images`` images, the compiled graph,
  channels-last; model, composition and Adam step included).

Prints the median seconds per step, per 1,000 training frames (a frame: one 512x512 detector input's worth of
pixels; a 256x256 window is a quarter of one) and per 1,000 windows, and the ratios to ``before``.
The full distillation step of ``affine_fuse_detector.yaml`` (fusion losses and teacher too) is measured by
``training/distill.py`` itself (``summary.json``: seconds_per_step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sage_core.checkpoint import load_model
from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.options import DEFAULT_WEIGHTS
from sage_core.train.detection import DetectionConfig, DetectionTerm
from sage_core.train.detection_data import split_index
from sage_core.train.detection_fit import DetectionFit
from sage_core.train.detection_fit_config import load_fit_config
from sage_core.train.detectors import load_detector

REPO = Path(__file__).resolve().parents[1]
MSRS = REPO.parent / "shared" / "datasets" / "msrs180"
CENTERNET = REPO / "benchmarks/downstream/node_modules/@vladmandic/human/models/centernet.json"


def whole_frames(count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` msrs180 train-split pairs as (1, 1, H, W) planes, as the distiller's detection term takes them."""
    pairs = [p for i, p in enumerate(dataset_pairs(MSRS)) if split_index(i, "train")][:count]
    frames = []
    for pair in pairs:
        ir, vis = read_pair(pair)
        luma = vis_to_luma_chroma(vis)
        planes = {"y": luma.y, "ir": ir_to_gray(ir), "cr": luma.cr, "cb": luma.cb}
        frames.append({k: torch.from_numpy(v)[None, None] for k, v in planes.items()})
    return frames


class WholeFrameStep:
    """One ``teacher.detection`` step of issue 22 on a whole frame: targets (two passes), fused forward + backward."""

    def __init__(self, compiled: bool) -> None:
        config = DetectionConfig(detector=f"centernet:{CENTERNET}", classes=[0, 2, 5, 7])
        self.term = DetectionTerm(config, torch.device("cpu"))
        self.term.detector = load_detector(config.detector, None, None, config.classes, torch.device("cpu"), compiled)
        self.model = load_model(DEFAULT_WEIGHTS)[0].train()

    def __call__(self, planes: dict[str, torch.Tensor]) -> None:
        fused = self.model(planes["y"], planes["ir"])
        loss = self.term.loss(fused, planes["y"], planes["ir"], planes["cr"], planes["cb"])
        loss.backward()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--config", type=Path, default=REPO / "training/configs/detection_fuse.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "out/bench_detection_training")
    args = parser.parse_args(argv)
    if not (CENTERNET.is_file() and MSRS.is_dir()):
        print(f"needs {CENTERNET} (npm ci in benchmarks/downstream) and {MSRS}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    frames = whole_frames(8)
    train = "data.train=[{path: " + str(MSRS) + ", split: train, limit: 8}]"
    config = load_fit_config(args.config, [train, "data.val=[]"])
    fit = DetectionFit(config, args.out, progress=False)
    windows = config.optim.batch
    steps = {"before": WholeFrameStep(compiled=False), "before, compiled": WholeFrameStep(compiled=True)}
    timings: dict[str, list[float]] = {name: [] for name in (*steps, "after")}
    for r in range(args.rounds + 1):  # round 0 warms up every path
        for name, step in steps.items():
            started = time.perf_counter()
            step(frames[r % len(frames)])
            timings[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        fit.train_step()
        timings["after"].append(time.perf_counter() - started)
    per_frame = {"before": 1.0, "before, compiled": 1.0, "after": windows / 4}  # 512x512 inputs' worth per step
    per_window = {"before": 4.0, "before, compiled": 4.0, "after": windows}
    base = float(np.median(timings["before"][1:]))
    print("| path | s / step | s / 1,000 frames | s / 1,000 256x256 windows | x faster per frame |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    for name, values in timings.items():
        median = float(np.median(values[1:]))
        print(f"| {name} | {median:.3f} | {1000 * median / per_frame[name]:.0f} | "
              f"{1000 * median / per_window[name]:.0f} | {base / (median / per_frame[name]):.1f} |")
    print(f"\n{args.rounds} rounds, median; one thread (OMP_NUM_THREADS=1); after: {windows} windows from "
          f"{config.optim.images} images per step (model {config.model.arch} {config.model.config})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
