"""Training images for detector-in-the-loop training: where pairs come from, the msrs180 split, what is kept.

A source is a dataset folder (``NAME/ir``, ``NAME/vis``) or a registered clip folder (``ir.mp4`` + ``vis.mp4``,
every ``every``-th frame). msrs180, the downstream benchmark's set, is split by index of its sorted pairs:
odd indices are the held-out **test** half (never read in training), indices 0, 4, 8, ... the **val** split
(choosing among runs and checkpoints), 2, 6, 10, ... the **train** split. Each image is kept as uint8 planes
(visible Y, Cr, Cb and the thermal, exactly what the fusion pipeline computes from the files), the model's
pooled input, and the detector's window targets (``detection_targets.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sage_core.color import ir_to_gray
from sage_core.errors import ConfigError
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.train.detection_targets import TargetCache, WindowTargets
from sage_core.train.detector_windows import kept_cells
from sage_core.video_files import is_clip, read_clip

SPLITS = ("all", "train", "val", "test")


@dataclass
class SourceSpec:
    """One entry of ``data.train``: a folder, which part of it, every how many clip frames, at most how many."""

    path: str
    split: str = "all"
    every: int = 1
    limit: int | None = None
    labels: str | None = None  # a label set (PATH/labels/SET/<stem>.txt) added to the targets; train split only


def split_index(index: int, split: str) -> bool:
    """Whether pair ``index`` (of the sorted pairs) belongs to ``split``: test odd, val 0 mod 4, train 2 mod 4."""
    if split == "all":
        return True
    if split == "test":
        return index % 2 == 1
    return index % 4 == (0 if split == "val" else 2)


def _as_uint8_gray(ir: np.ndarray) -> np.ndarray:
    return ir if ir.dtype == np.uint8 and ir.ndim == 2 else (ir_to_gray(ir) * 255.0 + 0.5).astype(np.uint8)


def _as_uint8_bgr(vis: np.ndarray) -> np.ndarray:
    if vis.ndim == 2 or vis.shape[2] == 1:
        vis = cv2.cvtColor(vis.reshape(vis.shape[0], vis.shape[1]), cv2.COLOR_GRAY2BGR)
    if vis.dtype != np.uint8:
        vis = (np.clip(vis.astype(np.float32) / (65535.0 if vis.dtype == np.uint16 else 1.0), 0, 1) * 255 + 0.5)
    return vis[:, :, :3].astype(np.uint8)


def source_frames(spec: SourceSpec) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, thermal H x W uint8, visible H x W x 3 uint8) of a source, in a fixed order."""
    folder = Path(spec.path)
    if spec.split not in SPLITS:
        raise ConfigError(f"data: {spec.path}: split {spec.split!r}; expected one of {', '.join(SPLITS)}")
    if spec.every < 1:
        raise ConfigError(f"data: {spec.path}: every must be >= 1, got {spec.every}")
    count = 0
    if is_clip(folder):
        for index, (ir, vis) in enumerate(read_clip(folder)):
            if index % spec.every == 0 and (spec.limit is None or count < spec.limit):
                count += 1
                yield f"{folder.name}/{index:05d}", ir, vis
        return
    if not folder.is_dir():
        raise ConfigError(f"data: {spec.path} is neither a dataset folder (ir/, vis/) nor a clip (ir.mp4, vis.mp4)")
    for index, pair in enumerate(dataset_pairs(folder)):
        if split_index(index, spec.split) and (spec.limit is None or count < spec.limit):
            count += 1
            ir, vis = read_pair(pair)
            yield f"{folder.name}/{pair.stem}", _as_uint8_gray(ir), _as_uint8_bgr(vis)


@dataclass
class TrainingImage:
    """One image: uint8 planes (H x W) ``y``, ``cr``, ``cb``, ``ir``; the model's ``pooled`` (1, 2, h, w) input;
    the window ``targets``; per window, the ``kept`` cells (K, n, n) and the number of target objects there."""

    name: str
    source: str
    planes: dict[str, np.ndarray]
    pooled: torch.Tensor
    targets: WindowTargets
    kept: torch.Tensor
    objects: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.planes["y"].shape

    def region(self, r0: int, r1: int, c0: int, c1: int) -> dict[str, torch.Tensor]:
        """Float (1, 1, h, w) planes in [0, 1] of a native region."""
        return {k: torch.from_numpy(np.ascontiguousarray(v[r0:r1, c0:c1])).float()[None, None] / 255.0
                for k, v in self.planes.items()}


def pooled_input(y: np.ndarray, ir: np.ndarray, scale: int) -> torch.Tensor:
    """The affine model's pooled (Y, ir) input, as ``AffineFuse.low_resolution`` computes it."""
    planes = torch.from_numpy(np.stack((y, ir))).float()[None] / 255.0
    return F.avg_pool2d(planes, scale, ceil_mode=True)


def object_count(heat: np.ndarray, kept: torch.Tensor, peak_score: float) -> np.ndarray:
    """Target objects (3x3 local maxima of at least ``peak_score``) in each window's kept cells: (K,)."""
    h = torch.from_numpy(heat).float()
    peaks = (h == F.max_pool2d(h, 3, stride=1, padding=1)) & (h >= peak_score)
    return (peaks.any(1) & (kept > 0)).sum(dim=(1, 2)).numpy()


def with_labels(targets: WindowTargets, label_file: Path, image_size: tuple[int, int], input_size: tuple[int, int],
                classes: list[int]) -> WindowTargets:
    """``targets`` with the boxes of ``label_file`` as peaks, per cell the larger (``detection_labels.py``)."""
    from sage_core.train.detection_labels import label_heatmap

    peaks = label_heatmap(label_file, image_size, input_size, classes)
    heat = targets.heat.copy()
    for k, window in enumerate(targets.windows):
        rows, cols = window.cells()
        heat[k] = np.maximum(heat[k], peaks[:, rows, cols].astype(np.float16))
    return WindowTargets(targets.windows, heat, targets.sizes)


def load_images(specs: list[SourceSpec], cache: TargetCache, scale: int, border: int, peak_score: float,
                progress: bool = True) -> list[TrainingImage]:
    """Every image of ``specs`` with its planes, pooled input and targets (computed once, then from the cache)."""
    images = []
    for spec in specs:
        frames = source_frames(spec)
        for name, ir, vis in tqdm(frames, desc=f"targets {Path(spec.path).name}:{spec.split}", unit="img",
                                  disable=not progress):
            ycrcb = cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb)
            planes = {"y": ycrcb[..., 0].copy(), "cr": ycrcb[..., 1].copy(), "cb": ycrcb[..., 2].copy(), "ir": ir}
            targets = cache.targets(ir, vis)
            if spec.labels:
                label_file = Path(spec.path) / "labels" / spec.labels / f"{name.rsplit('/', 1)[-1]}.txt"
                targets = with_labels(targets, label_file, ir.shape, cache.detector.input_size, cache.detector.classes)
            kept = torch.stack([kept_cells(w, cache.detector.input_size, border) for w in targets.windows])
            images.append(TrainingImage(name, f"{Path(spec.path).name}:{spec.split}", planes,
                                        pooled_input(planes["y"], ir, scale), targets, kept,
                                        object_count(targets.heat, kept, peak_score)))
    if not images:
        raise ConfigError("data.train: no images (check the folders and splits)")
    return images
