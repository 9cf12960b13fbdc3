"""How far the configured homography is off on the current frame: the node's background alignment check.

Only a small local refinement: the thermal image is warped with the configured transform, patches
are matched within a few pixels, and a near-identity correction (affine, in rgb pixels) is fitted
robustly through them. The residual is how far the corrected transform moves a 5x5 grid of thermal
pixels, in pixels of a 640-wide rgb image. It runs on one core (cv2.setNumThreads(1)), off the frame
path, so its cost does not delay fused frames; nothing is kept between calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sage_core.registration.features import resize_to_width, to_gray01
from sage_core.registration.geometry import grid_error, normalized, scale_matrix, transform_points
from sage_core.registration.quality import texture_problem
from sage_core.registration.refine import Level, fit_model, match_pair, work_scale

#: Two quick steps: +-16 px then +-3 px (640-wide rgb); a residual beyond the first radius is not measured.
RESIDUAL_LEVELS = (Level(320, 32, 8, 16), Level(640, 48, 3, 24))
#: The correction is trusted only with this many agreeing matches, and this share of the tried patches.
MIN_INLIERS, MIN_INLIER_SHARE = 12, 0.12


@dataclass(frozen=True)
class Residual:
    """Misalignment of one frame pair under a homography.

    ``px``: mean displacement of a 5x5 grid of thermal pixels (10-90 %) between the given and the
    refined homography, in pixels of the rgb image scaled to 640 wide; None when not measurable.
    ``refined``: the locally refined 3x3 homography (thermal -> rgb pixels), or None.
    ``reason``: why it could not be measured, or a short summary of the evidence.
    """

    px: float | None
    refined: np.ndarray | None
    reason: str


def _refusal(reason: str) -> Residual:
    return Residual(None, None, reason)


def _correction(thermal: np.ndarray, rgb: np.ndarray, homography: np.ndarray, level: Level
                ) -> tuple[np.ndarray | None, str]:
    """A near-identity rgb -> rgb correction from one level of patch matches, or None and why."""
    rgb_size = (rgb.shape[1], rgb.shape[0])
    work = work_scale(rgb_size, level.width)
    matches = match_pair(thermal, resize_to_width(rgb, min(level.width, rgb_size[0])), homography, work, level)
    predicted = transform_points(homography, matches.thermal) if len(matches.thermal) else matches.rgb
    threshold = 1.5 * rgb_size[0] / min(level.width, rgb_size[0])
    correction, mask = fit_model(predicted, matches.rgb, "affine", threshold)
    inliers = int(mask.sum())
    if correction is None or inliers < MIN_INLIERS or inliers < MIN_INLIER_SHARE * max(matches.tried, 1):
        return None, (f"too few consistent edge matches ({inliers} of {matches.tried} textured patches): "
                      "little shared structure, or misaligned by more than the local search reaches")
    return correction, f"{inliers} of {matches.tried} patches agree"


def measure_residual(thermal: np.ndarray, rgb_bgr: np.ndarray, homography: np.ndarray | None) -> Residual:
    """Residual misalignment of a frame pair after ``homography`` (3x3, thermal -> rgb pixels).

    ``thermal``: H x W, float [0, 1], uint8 or uint16; ``rgb_bgr``: BGR (or gray) image of any size.
    ``homography`` None means the cameras are co-registered and only resized (the node's default).
    Refuses (``px`` None, with the reason) on blank, dark or textureless input.
    """
    th, tw = thermal.shape[:2]
    rh, rw = rgb_bgr.shape[:2]
    given = scale_matrix(rw / tw, rh / th) if homography is None else normalized(np.asarray(homography, np.float64))
    thermal01 = to_gray01(thermal, stretch=True)
    rgb01 = to_gray01(rgb_bgr, stretch=False)
    problem = texture_problem(thermal, thermal01, rgb01)
    if problem:
        return _refusal(problem)
    refined, summary = given, ""
    for level in RESIDUAL_LEVELS:
        correction, summary = _correction(thermal01, rgb01, refined, level)
        if correction is None:
            return _refusal(summary)
        refined = normalized(correction @ refined)
    return Residual(grid_error(refined, given, (tw, th), rw), refined, summary)
