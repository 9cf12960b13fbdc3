"""Estimating one rig's thermal -> rgb homography from one or several image pairs.

Coarse global search (``coarse.py``), then patch-match refinement over three levels
(``refine.py``), for the best few coarse hypotheses; the hypothesis that ends with the most
consistent matches wins. With several pairs the matches of all pairs are fitted together; a pair
whose matches disagree with the joint fit (another scene, a moved camera) is dropped and reported.
Nothing is returned that the quality checks (``quality.py``) do not trust: they raise
``RegistrationError`` with the reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sage_core.registration.coarse import Candidate, coarse_search
from sage_core.registration.features import resize_to_width, to_gray01
from sage_core.registration.geometry import REPORT_WIDTH, normalized, transform_points
from sage_core.registration.quality import Quality, RegistrationError, assess, check_texture
from sage_core.registration.refine import Level, Matches, fit_model, match_pair, work_scale

MODELS = ("homography", "affine", "similarity")
#: Coarse to fine: rgb working width, patch, search radius, grid step (working pixels).
LEVELS = (Level(320, 32, 10, 16), Level(640, 48, 6, 24), Level(640, 48, 3, 20))
#: Inlier threshold of the robust fit, in working pixels, per level.
FIT_THRESHOLD = (2.0, 2.0, 1.5)
#: Hypotheses refined at most, and the result (inliers, share of tried patches) that ends the search early.
HYPOTHESES, CLEAR_WIN = 8, (40, 0.35)
#: A pair of a several-pair rig is dropped when fewer of its matches than this agree with the joint fit.
PAIR_MIN_INLIER_SHARE = 0.35


@dataclass
class PairReport:
    """How one pair fits the rig's transform."""

    index: int
    residual_px: float | None  # median inlier distance, 640-wide rgb pixels; None when not used
    matches: int
    inliers: int
    used: bool
    note: str = ""


@dataclass
class Registration:
    """The estimated transform (thermal pixels -> rgb pixels) and how far to trust it."""

    homography: np.ndarray
    quality: Quality
    pairs: list[PairReport] = field(default_factory=list)
    thermal_size: tuple[int, int] = (0, 0)
    rgb_size: tuple[int, int] = (0, 0)
    model: str = "homography"


@dataclass
class _Attempt:
    homography: np.ndarray
    matches: list[Matches]
    inliers: list[np.ndarray]

    @property
    def inlier_count(self) -> int:
        return int(sum(mask.sum() for mask in self.inliers))


def _sizes(images: list[np.ndarray], role: str) -> tuple[int, int]:
    sizes = {(image.shape[1], image.shape[0]) for image in images}
    if len(sizes) != 1:
        raise RegistrationError(f"the {role} images of one rig must share one size, got "
                                f"{', '.join(f'{w}x{h}' for w, h in sorted(sizes))}")
    return sizes.pop()


def _refine(candidate: Candidate, thermals: list[np.ndarray], rgbs: list[np.ndarray], model: str,
            use: list[bool]) -> _Attempt | None:
    """Run the refinement levels from one coarse hypothesis; None when it falls apart."""
    rgb_size = (rgbs[0].shape[1], rgbs[0].shape[0])
    homography, attempt = candidate.homography, None
    for index, level in enumerate(LEVELS):
        to_work = work_scale(rgb_size, level.width)
        work_width = min(level.width, rgb_size[0])
        matches = [match_pair(t, resize_to_width(r, work_width), homography, to_work, level) if u
                   else Matches(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), 0)
                   for t, r, u in zip(thermals, rgbs, use)]
        src = np.concatenate([m.thermal for m in matches])
        dst = np.concatenate([transform_points(to_work, m.rgb) if len(m.rgb) else m.rgb for m in matches])
        level_model = "affine" if index == 0 and model == "homography" else model
        fitted, mask = fit_model(src, dst, level_model, FIT_THRESHOLD[index])
        if fitted is None or mask.sum() < 6:
            return None
        homography = normalized(np.linalg.inv(to_work) @ fitted)
        splits = np.cumsum([len(m.thermal) for m in matches])[:-1]
        attempt = _Attempt(homography, matches, np.split(mask, splits))
    return attempt


def _pair_reports(attempt: _Attempt, rgb_width: int, use: list[bool], texture: list[bool]) -> list[PairReport]:
    reports = []
    for index, (matches, mask) in enumerate(zip(attempt.matches, attempt.inliers)):
        if not use[index]:
            note = "disagrees with the other pairs" if texture[index] else "too little structure"
            reports.append(PairReport(index, None, len(matches.thermal), int(mask.sum()), False, note))
            continue
        residual = None
        if mask.any():
            errors = np.linalg.norm(transform_points(attempt.homography, matches.thermal[mask]) - matches.rgb[mask],
                                    axis=1)
            residual = float(np.median(errors) * REPORT_WIDTH / rgb_width)
        reports.append(PairReport(index, residual, len(matches.thermal), int(mask.sum()), True))
    return reports


def _best_attempt(candidates: list[Candidate], thermals: list[np.ndarray], rgbs: list[np.ndarray], model: str,
                  use: list[bool]) -> _Attempt | None:
    """Refine the coarse hypotheses best first; stop at the first one most of whose matches agree."""
    best = None
    for candidate in candidates:
        attempt = _refine(candidate, thermals, rgbs, model, use)
        if attempt is None:
            continue
        if best is None or attempt.inlier_count > best.inlier_count:
            best = attempt
        tried = sum(m.tried for m in attempt.matches)
        if attempt.inlier_count >= CLEAR_WIN[0] and attempt.inlier_count >= CLEAR_WIN[1] * tried:
            break
    return best


def _drop_disagreeing(attempt: _Attempt, use: list[bool]) -> list[bool]:
    """Pairs whose matches mostly disagree with the joint fit are left out of the next fit."""
    keep = list(use)
    for index, mask in enumerate(attempt.inliers):
        if use[index] and (not len(mask) or mask.mean() < PAIR_MIN_INLIER_SHARE):
            keep[index] = False
    return keep if any(keep) else use


def register(thermal_images: list[np.ndarray], rgb_images: list[np.ndarray], model: str = "homography",
             strict: bool = True, start: np.ndarray | None = None) -> Registration:
    """Estimate the thermal -> rgb transform of one rig from paired images (any sizes and types).

    Raises ``RegistrationError`` (with the reason) rather than return a transform it does not trust;
    with ``strict=False`` an untrusted estimate is returned with ``quality.refusal`` set (benchmarks).
    ``start``: a known approximate transform (thermal -> rgb pixels) to refine; skips the global search.
    """
    if model not in MODELS:
        raise RegistrationError(f"model {model!r}; expected one of {', '.join(MODELS)}")
    if not thermal_images or len(thermal_images) != len(rgb_images):
        raise RegistrationError("give at least one thermal image and as many rgb images as thermal images")
    thermal_size, rgb_size = _sizes(thermal_images, "thermal"), _sizes(rgb_images, "rgb")
    thermals = [to_gray01(image, stretch=True) for image in thermal_images]
    rgbs = [to_gray01(image, stretch=False) for image in rgb_images]
    use = texture = check_texture(thermal_images, thermals, rgbs)
    if start is None:
        candidates = coarse_search([t for t, u in zip(thermals, use) if u], [r for r, u in zip(rgbs, use) if u],
                                   keep=HYPOTHESES)
    else:
        candidates = [Candidate(normalized(np.asarray(start, np.float64)), 0.0, 0.0, 0.0)]
    attempt = _best_attempt(candidates, thermals, rgbs, model, use)
    if attempt is not None and len(use) > 1:
        kept = _drop_disagreeing(attempt, use)
        if kept != use:
            refit = _refine(Candidate(attempt.homography, 0.0, 0.0, 0.0), thermals, rgbs, model, kept)
            attempt, use = (refit, kept) if refit is not None else (attempt, use)
    if attempt is None:
        raise RegistrationError("could not register: no consistent edge matches between the thermal and rgb "
                                "images (different scenes, no overlap, or too little shared structure); "
                                "record a few textured daylight pairs of the rig")
    pairs = _pair_reports(attempt, rgb_size[0], use, texture)
    quality = assess(attempt.homography, attempt.matches, attempt.inliers, thermal_size, rgb_size)
    if strict and quality.refusal:
        raise RegistrationError(f"could not register: {quality.refusal}; record a few textured daylight pairs "
                                "of the rig")
    return Registration(attempt.homography, quality, pairs, thermal_size, rgb_size, model)
