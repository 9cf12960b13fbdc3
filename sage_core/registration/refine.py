"""Local refinement: match small patches of the warped thermal image in the rgb image, fit the model.

With the current estimate, the thermal image is warped onto the rgb grid. On a grid of patches,
each patch's orientation field is searched for in a small window of the rgb field (cosine
similarity, sub-pixel peak). Each good match is one thermal <-> rgb correspondence; a robust fit
(MAGSAC) of the model through all of them, from every pair of the rig, is the new estimate.
Unlike a global intensity objective, each match only moves where edges agree, so the estimate
holds still at the truth instead of drifting towards where one modality's edges are strongest.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.registration.features import orientation_field
from sage_core.registration.geometry import scale_matrix, transform_points

#: Least patch energy (mean field weight) for a patch to be matched: flat sky and road say nothing.
MIN_PATCH_WEIGHT = 0.08
#: Least cosine similarity of a match, and the margin by which it must beat the best match elsewhere.
MIN_MATCH_SCORE, MIN_PEAK_MARGIN = 0.25, 0.02


@dataclass
class Matches:
    """Correspondences of one pair: thermal native pixels, rgb native pixels, match scores."""

    thermal: np.ndarray  # N x 2
    rgb: np.ndarray  # N x 2
    score: np.ndarray  # N
    tried: int  # patches with enough structure to be matched


@dataclass(frozen=True)
class Level:
    """One refinement step: rgb working width, patch size, search radius, grid step (working pixels)."""

    width: int
    patch: int
    radius: int
    step: int


def _subpixel(scores: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Parabola through the peak and its neighbours, per axis."""
    def offset(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return 0.0 if abs(den) < 1e-9 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    h, w = scores.shape
    dx = offset(scores[y, x - 1], scores[y, x], scores[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(scores[y - 1, x], scores[y, x], scores[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + dx, y + dy


def _peak(scores: np.ndarray) -> tuple[float, float, float] | None:
    """Sub-pixel peak (x, y) and score, or None when it is weak or not clearly the best."""
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    if best < MIN_MATCH_SCORE:
        return None
    masked = scores.copy()
    masked[max(0, y - 2):y + 3, max(0, x - 2):x + 3] = -1.0
    if best - float(masked.max()) < MIN_PEAK_MARGIN:
        return None
    sx, sy = _subpixel(scores, x, y)
    return sx, sy, float(best)


def match_pair(thermal: np.ndarray, rgb_work: np.ndarray, homography: np.ndarray, work: np.ndarray, level: Level
               ) -> Matches:
    """Patch correspondences between a thermal image and an rgb image (gray, resized to working size
    by ``work``, rgb native -> working pixels), around the estimate ``homography`` (thermal -> rgb native)."""
    to_work = work @ homography
    h, w = rgb_work.shape
    warped = cv2.warpPerspective(thermal, to_work, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpPerspective(np.ones_like(thermal, np.uint8), to_work, (w, h), flags=cv2.INTER_NEAREST)
    # A patch centre here has its whole patch (and a margin) on thermal pixels, not on the replicated border.
    inside = cv2.erode(valid, np.ones((level.patch + 5, level.patch + 5), np.uint8))
    t_field = orientation_field(warped)
    v_field = orientation_field(rgb_work)
    t_weight = np.sqrt((t_field * t_field).sum(axis=2))
    half, r = level.patch // 2, level.radius
    found, tried = [], 0
    for cy in range(half + r, h - half - r, level.step):
        for cx in range(half + r, w - half - r, level.step):
            ys, xs = slice(cy - half, cy + half), slice(cx - half, cx + half)
            if not inside[cy, cx] or t_weight[ys, xs].mean() < MIN_PATCH_WEIGHT:
                continue
            tried += 1
            window = v_field[cy - half - r:cy + half + r, cx - half - r:cx + half + r]
            peak = _peak(cv2.matchTemplate(window, np.ascontiguousarray(t_field[ys, xs]), cv2.TM_CCORR_NORMED))
            if peak is not None:
                found.append((cx - 0.5, cy - 0.5, cx - 0.5 + peak[0] - r, cy - 0.5 + peak[1] - r, peak[2]))
    return _to_native(found, to_work, work, tried)


def _to_native(found: list[tuple[float, ...]], to_work: np.ndarray, work: np.ndarray, tried: int) -> Matches:
    if not found:
        return Matches(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), tried)
    array = np.asarray(found, np.float64)
    thermal = transform_points(np.linalg.inv(to_work), array[:, :2])
    return Matches(thermal, transform_points(np.linalg.inv(work), array[:, 2:4]), array[:, 4], tried)


def work_scale(rgb_size: tuple[int, int], width: int) -> np.ndarray:
    """rgb native pixels -> working pixels for a working width (never enlarging)."""
    w, h = rgb_size
    width = min(width, w)
    return scale_matrix(width / w, round(h * width / w) / h)


def fit_model(thermal: np.ndarray, rgb: np.ndarray, model: str, threshold: float
              ) -> tuple[np.ndarray | None, np.ndarray]:
    """Robust fit of thermal -> rgb points (MAGSAC, ``threshold`` in rgb pixels): matrix and inlier mask."""
    n = len(thermal)
    if n < (4 if model == "homography" else 3):
        return None, np.zeros(n, bool)
    src, dst = thermal.astype(np.float32), rgb.astype(np.float32)
    if model == "homography":
        matrix, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, threshold, maxIters=2000, confidence=0.999)
    else:
        estimate = cv2.estimateAffine2D if model == "affine" else cv2.estimateAffinePartial2D
        affine, mask = estimate(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=2000,
                                confidence=0.999, refineIters=20)
        matrix = None if affine is None else np.vstack([affine, [0, 0, 1]])
    if matrix is None or mask is None:
        return None, np.zeros(n, bool)
    return matrix / matrix[2, 2], mask.ravel().astype(bool)
