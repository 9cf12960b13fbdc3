"""How far to trust an estimate: texture checks before, match statistics and a confidence after.

A wrong transform written silently is worse than a refusal, so an estimate is only accepted
when enough patches spread over the image agree on it to within a pixel or two. The thresholds
were calibrated on ``benchmarks/bench_registration.py`` (see there) so that wrong answers
(more than 12 px off at 640 wide) stay rare.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.errors import SageError
from sage_core.registration.features import edge_fraction
from sage_core.registration.geometry import REPORT_WIDTH, implausibility, transform_points

#: Least share of edge pixels (see features.edge_fraction) in a usable thermal or rgb image.
MIN_EDGE_FRACTION = 0.02
#: Least raw spread (1st..99th percentile) of a thermal image, as a share of its type's range.
MIN_THERMAL_SPREAD = {np.dtype(np.uint8): 3 / 255, np.dtype(np.uint16): 8 / 65535}
#: Accept an estimate only at or above this confidence: chosen with ``benchmarks/bench_registration.py
#: --thresholds`` where wrong answers stop falling while refusals keep rising; rerun it after changing the
#: estimator.
MIN_CONFIDENCE = 0.5


class RegistrationError(SageError):
    """The images cannot be registered; the message says why and what to record instead."""


@dataclass(frozen=True)
class Quality:
    """Statistics of the final matches and the confidence drawn from them."""

    inliers: int  # matches that agree with the transform
    matches: int  # patches matched (above the similarity threshold)
    tried: int  # patches with enough structure to try
    residual_px: float  # RMS distance of the inliers to the transform, 640-wide rgb pixels
    spread: float  # area of the inliers' convex hull / thermal image area
    confidence: float  # 0..1
    refusal: str | None  # why the estimate is not trusted; None when it is


def _thermal_spread(raw: np.ndarray) -> float:
    lo, hi = np.percentile(raw, (1, 99))
    full = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(raw.dtype, 1.0)
    return float(hi - lo) / full


def texture_problem(raw_thermal: np.ndarray, thermal: np.ndarray, rgb: np.ndarray) -> str | None:
    """Why this pair shows too little to register, or None."""
    if _thermal_spread(raw_thermal) < MIN_THERMAL_SPREAD.get(raw_thermal.dtype, 0.005):
        return "the thermal image is blank (nearly uniform)"
    if float(np.percentile(rgb, 99)) < 0.08:
        return "the rgb image is dark (a night frame?) and shows almost no structure"
    if edge_fraction(thermal) < MIN_EDGE_FRACTION:
        return "the thermal image is textureless (almost no edges)"
    if edge_fraction(rgb) < MIN_EDGE_FRACTION:
        return "the rgb image is textureless or too dark (almost no edges)"
    return None


def check_texture(raw_thermals: list[np.ndarray], thermals: list[np.ndarray], rgbs: list[np.ndarray]) -> list[bool]:
    """Which pairs show enough structure; raises RegistrationError when none does."""
    problems = [texture_problem(raw, t, r) for raw, t, r in zip(raw_thermals, thermals, rgbs)]
    if all(problems):
        which = problems[0] if len(problems) == 1 else f"no pair shows enough structure (first: {problems[0]})"
        raise RegistrationError(f"could not register: {which}; record a few textured daylight pairs of the rig")
    return [problem is None for problem in problems]


def _spread(points: np.ndarray, thermal_size: tuple[int, int]) -> float:
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    return float(cv2.contourArea(hull)) / float(thermal_size[0] * thermal_size[1])


def confidence(inliers: int, share: float, residual_px: float, spread: float) -> float:
    """0..1 from the evidence: many inliers, most matches agreeing, small residual, spread out."""
    count = min(1.0, inliers / 40.0)
    agreement = min(1.0, share / 0.6)
    tightness = float(np.clip((3.0 - residual_px) / 2.0, 0.0, 1.0))
    coverage = min(1.0, spread / 0.35)
    return float(count * agreement * tightness * coverage) ** 0.25


def assess(homography: np.ndarray, matches: list, inliers: list[np.ndarray], thermal_size: tuple[int, int],
           rgb_size: tuple[int, int]) -> Quality:
    """Quality of a fitted transform from its final matches (one ``Matches`` and inlier mask per pair)."""
    n_in = int(sum(mask.sum() for mask in inliers))
    n_matches = int(sum(len(mask) for mask in inliers))
    tried = int(sum(m.tried for m in matches))
    points = [m.thermal[mask] for m, mask in zip(matches, inliers) if mask.any()]
    src = np.concatenate(points) if points else np.zeros((0, 2))
    dst = np.concatenate([m.rgb[mask] for m, mask in zip(matches, inliers) if mask.any()]) if points else src
    residual = float(np.sqrt(np.mean(np.sum((transform_points(homography, src) - dst) ** 2, axis=1)))
                     * REPORT_WIDTH / rgb_size[0]) if len(src) else float("inf")
    spread = _spread(src, thermal_size)
    conf = confidence(n_in, n_in / max(tried, 1), residual, spread)
    refusal = implausibility(homography, thermal_size, rgb_size)
    if refusal is None and conf < MIN_CONFIDENCE:
        refusal = (f"too few consistent edge matches ({n_in} of {tried} patches agree, confidence {conf:.2f} < "
                   f"{MIN_CONFIDENCE}): different scenes, little overlap, or too little shared structure")
    return Quality(n_in, n_matches, tried, residual, spread, conf, refusal)
