"""Detection scoring for the downstream benchmark: boxes, labels, AP50 and the paired bootstrap.

- Labels are YOLO text files (``class cx cy w h`` normalised); boxes everywhere else are
  ``x1, y1, x2, y2`` in pixels.
- Detections come from a COCO detector; :data:`COCO_TO_TASK` folds COCO classes into the
  benchmark's (car, bus and truck count as car).
- AP is PASCAL VOC's (IoU >= 0.5, greedy matching in score order, a detection whose best ground
  truth is already taken is a false positive, all-point interpolation), pooled over images.
- The paired bootstrap draws images with replacement, the same draw for every method, and
  recomputes each AP on the draw; a drawn-twice image counts twice. It is done with per-image
  weights on detections sorted once, which is exactly the AP of the duplicated set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABEL_CLASSES = {0: "person", 1: "bicycle", 2: "car"}
COCO_TO_TASK = {0: "person", 1: "bicycle", 2: "car", 5: "car", 7: "car"}


def load_yolo_labels(path: str | Path, width: int, height: int) -> dict[str, np.ndarray]:
    """A YOLO label file -> {class name: (N, 4) x1 y1 x2 y2 pixel boxes}; a missing file means no boxes."""
    boxes: dict[str, list[list[float]]] = {name: [] for name in LABEL_CLASSES.values()}
    path = Path(path)
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split()
            if not fields:
                continue
            cls, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
            boxes[LABEL_CLASSES[cls]].append([(cx - w / 2) * width, (cy - h / 2) * height,
                                              (cx + w / 2) * width, (cy + h / 2) * height])
    return {name: np.asarray(b, np.float64).reshape(-1, 4) for name, b in boxes.items()}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4) -> (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def union_labels(first: dict[str, np.ndarray], second: dict[str, np.ndarray],
                 iou: float = 0.5) -> dict[str, np.ndarray]:
    """Boxes of ``first`` plus those of ``second`` that match none of ``first`` (same class, IoU >= iou).

    Two label sets drawn on the two cameras of one pair mostly box the same objects; a plain
    concatenation would count each such object twice (and the second copy could never be found).
    """
    merged = {}
    for name, a in first.items():
        b = second.get(name, np.zeros((0, 4)))
        if len(a) and len(b):
            b = b[iou_matrix(b, a).max(axis=1) < iou]
        merged[name] = np.concatenate([a, b]).reshape(-1, 4)
    return merged


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_output: int) -> np.ndarray:
    """Greedy non-maximum suppression (as tf.image.nonMaxSuppression) -> kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for index in order:
        if len(keep) >= max_output:
            break
        if keep and iou_matrix(boxes[index:index + 1], boxes[keep]).max() > iou_threshold:
            continue
        keep.append(int(index))
    return np.asarray(keep, np.int64)


@dataclass(frozen=True)
class PostProcess:
    """What turns the graph's raw top-100 rows into detections.

    ``nms="class"`` (the default): COCO classes folded into the task's first, then NMS within each
    task class, the usual way to score a detector. ``nms="agnostic"``: @vladmandic/human's own
    decoding, one NMS over all classes together (a person on a bicycle can suppress the bicycle,
    or the person). human's defaults are ``min_score=0.2, max_detections=10``.
    """

    min_score: float = 0.05
    iou_threshold: float = 0.4
    max_detections: int = 100
    nms: str = "class"


def postprocess(raw: np.ndarray, settings: PostProcess = PostProcess()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Raw detector rows (x1, y1, x2, y2, score, coco class) -> {task class: (boxes (N, 4), scores (N,))}.

    Rows under ``min_score`` (or with no class) are dropped, COCO classes are folded into the task's
    (:data:`COCO_TO_TASK`, others dropped), NMS at ``iou_threshold`` runs per task class or over all
    of them (``settings.nms``), and at most ``max_detections`` are kept (per image, or per class).
    """
    raw = np.asarray(raw, np.float64).reshape(-1, 6)
    raw = raw[np.isfinite(raw[:, 5]) & (raw[:, 4] >= settings.min_score)]
    if settings.nms not in ("class", "agnostic"):
        raise ValueError(f"nms must be 'class' or 'agnostic', not {settings.nms!r}")
    if settings.nms == "agnostic" and len(raw):
        raw = raw[nms(raw[:, :4], raw[:, 4], settings.iou_threshold, settings.max_detections)]
    task = np.array([COCO_TO_TASK.get(int(c), "") for c in raw[:, 5]], dtype=object)
    out = {}
    for name in sorted(set(COCO_TO_TASK.values())):
        rows = raw[task == name] if len(raw) else raw
        if settings.nms == "class" and len(rows):
            rows = rows[nms(rows[:, :4], rows[:, 4], settings.iou_threshold, settings.max_detections)]
        out[name] = (rows[:, :4].reshape(-1, 4), rows[:, 4].reshape(-1))
    return out


@dataclass
class ImageMatches:
    """One image, one class: each detection's score and whether it is a true positive, and the ground truths."""

    scores: np.ndarray
    true_positive: np.ndarray
    n_ground_truth: int


def match_image(boxes: np.ndarray, scores: np.ndarray, ground_truth: np.ndarray,
                iou_threshold: float = 0.5) -> ImageMatches:
    """VOC matching: in score order, a detection is a TP when its best-overlap ground truth reaches
    ``iou_threshold`` and is not yet taken; otherwise (taken, or too little overlap) an FP."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)[order]
    ground_truth = np.asarray(ground_truth, np.float64).reshape(-1, 4)
    tp = np.zeros(len(order), bool)
    if len(ground_truth) and len(order):
        overlaps = iou_matrix(boxes, ground_truth)
        taken = np.zeros(len(ground_truth), bool)
        for k in range(len(order)):
            best = int(np.argmax(overlaps[k]))
            if overlaps[k, best] >= iou_threshold and not taken[best]:
                taken[best] = tp[k] = True
    return ImageMatches(scores[order], tp, len(ground_truth))


class PooledMatches:
    """The matches of many images for one method and class, sorted once by score (ties: image order)."""

    def __init__(self, images: list[ImageMatches]) -> None:
        scores = np.concatenate([m.scores for m in images]) if images else np.zeros(0)
        tp = np.concatenate([m.true_positive for m in images]) if images else np.zeros(0, bool)
        image = np.concatenate([np.full(len(m.scores), i) for i, m in enumerate(images)]) if images else np.zeros(0)
        order = np.argsort(-scores, kind="stable")
        self.true_positive = tp[order].astype(np.float64)
        self.image = image[order].astype(np.int64)
        self.n_ground_truth = np.asarray([m.n_ground_truth for m in images], np.float64)
        self.n_images = len(images)

    def average_precision(self, weights: np.ndarray | None = None) -> np.ndarray | float:
        """VOC all-point AP; ``weights`` (n_images,) or (R, n_images) counts each image that many times.

        Returns a float for no/1-D weights, an (R,) array for 2-D; NaN where there is no ground truth.
        """
        w = np.ones((1, self.n_images)) if weights is None else np.atleast_2d(np.asarray(weights, np.float64))
        n_pos = w @ self.n_ground_truth
        wd = w[:, self.image]
        tp = np.cumsum(wd * self.true_positive, axis=1)
        fp = np.cumsum(wd * (1.0 - self.true_positive), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = tp / n_pos[:, None]
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        # all-point interpolation: precision at each rank is the best precision at that recall or beyond
        envelope = np.flip(np.maximum.accumulate(np.flip(precision, axis=1), axis=1), axis=1)
        steps = np.diff(recall, axis=1, prepend=0.0)
        ap = np.where(n_pos > 0, np.sum(steps * envelope, axis=1), np.nan)
        return float(ap[0]) if weights is None or np.ndim(weights) == 1 else ap


def bootstrap_weights(n_images: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(resamples, n_images) counts: how often each image appears in each draw with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    return np.stack([np.bincount(d, minlength=n_images) for d in draws]).astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """A difference of APs on all images, and its paired-bootstrap percentile interval."""

    difference: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_difference(a: PooledMatches, b: PooledMatches, weights: np.ndarray, level: float = 0.95) -> Interval:
    """AP(a) - AP(b) on all images, with the ``level`` percentile interval over the draws ``weights``
    (the same draws for both, :func:`bootstrap_weights`); draws where either AP is undefined are dropped."""
    diffs = np.asarray(a.average_precision(weights)) - np.asarray(b.average_precision(weights))
    diffs = diffs[np.isfinite(diffs)]
    tail = (1.0 - level) / 2 * 100
    low, high = (np.percentile(diffs, [tail, 100 - tail]) if len(diffs) else (np.nan, np.nan))
    return Interval(a.average_precision() - b.average_precision(), float(low), float(high))
