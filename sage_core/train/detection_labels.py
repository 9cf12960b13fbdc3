"""Labelled targets for detector-in-the-loop training: boxes of a training split as CenterNet heat-maps.

Optional beside the label-free targets (``detection_targets.py``): for a source with ``labels: SET``
(msrs180's ``labels/SET/<stem>.txt``, YOLO boxes), each box becomes a Gaussian peak of 1 at its centre on the
detector's output grid, in the heat-map channel of its class (person -> COCO person, car -> COCO car), with the
radius CenterNet uses (the largest at which a box shifted by it still overlaps the true one at IoU 0.7,
CornerNet's three cases), and the training target is the per-cell maximum of the label-free target and these
peaks: the labels add the objects neither camera's detection found, and take nothing away (bus and truck stay
as the cameras see them; the benchmark folds them into car). Only ever a training split: the validation and
test splits' labels are read by the validation and the benchmark alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sage_core.eval.detection import load_yolo_labels
from sage_core.train.detector_windows import OUTPUT_STRIDE

#: The benchmark's class names -> the COCO heat-map channel a box of that class is drawn in.
COCO_CHANNEL = {"person": 0, "car": 2}


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's peak radius (output cells) for a box of ``height`` x ``width`` cells: the smallest of
    CornerNet's three cases (both corners shifted out, both in, one in and one out) at IoU ``min_overlap``."""
    m, h, w = min_overlap, height, width
    b1, c1 = h + w, w * h * (1 - m) / (1 + m)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - m) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    b3, c3 = -2 * m * (h + w), (m - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 16 * m * c3)) / 2
    return max(0.0, min(r1, r2, r3))


def draw_peak(heat: np.ndarray, cx: float, cy: float, radius: float) -> None:
    """A Gaussian of height 1 (sigma = diameter / 6) at cell (cx, cy), kept where it beats what is there."""
    r = max(int(radius), 0)
    sigma = (2 * r + 1) / 6.0
    x0, y0 = int(round(cx)), int(round(cy))
    ys, xs = np.ogrid[-r:r + 1, -r:r + 1]
    peak = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma)).astype(np.float32)
    height, width = heat.shape
    top, bottom, left, right = max(0, y0 - r), min(height, y0 + r + 1), max(0, x0 - r), min(width, x0 + r + 1)
    if top < bottom and left < right:
        window = peak[top - (y0 - r):bottom - (y0 - r), left - (x0 - r):right - (x0 - r)]
        np.maximum(heat[top:bottom, left:right], window, out=heat[top:bottom, left:right])


def label_heatmap(label_file: Path, image_size: tuple[int, int], input_size: tuple[int, int],
                  classes: list[int]) -> np.ndarray:
    """The boxes of ``label_file`` (an ``image_size`` (H, W) image) as ``(len(classes), h, w)`` peaks on the detector's
    output grid for an input of ``input_size`` (the image resized to it, as the benchmark feeds the detector)."""
    height, width = image_size
    grid = (input_size[0] // OUTPUT_STRIDE, input_size[1] // OUTPUT_STRIDE)
    heat = np.zeros((len(classes), *grid), np.float32)
    sy, sx = grid[0] / height, grid[1] / width
    for name, boxes in load_yolo_labels(label_file, width, height).items():
        if name not in COCO_CHANNEL or COCO_CHANNEL[name] not in classes:
            continue
        channel = classes.index(COCO_CHANNEL[name])
        for x1, y1, x2, y2 in boxes:
            h, w = (y2 - y1) * sy, (x2 - x1) * sx
            draw_peak(heat[channel], (x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy, gaussian_radius(h, w))
    return heat
