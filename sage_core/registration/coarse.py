"""Coarse global search: the thermal view's scale, roll and position in the rgb image, at low resolution.

Every (field-of-view fraction, roll) candidate renders the thermal image's orientation field as
the rgb camera would see it, and one ``matchTemplate`` over the (zero-padded) rgb field scores
every position at once. Several pairs of one rig add their score maps, so a pair that shows
nothing in common only adds noise to the sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.registration.features import orientation_field, resize_to_width
from sage_core.registration.geometry import scale_matrix

#: Width of the rgb image during the search.
COARSE_WIDTH = 224
#: Thermal width as a fraction of the rgb width, searched geometrically in FOV_STEP steps.
FOV_RANGE, FOV_STEP = (0.5, 1.08), 1.03
ROLL_DEGREES = np.arange(-6.0, 6.01, 1.5)
#: Part of the (rolled) thermal image used as template: its centre, clear of rolled borders.
TEMPLATE_SHARE = 0.8
#: The rgb field is padded by this share of its width, so the template may hang over its border.
PAD_SHARE = 0.3


@dataclass(frozen=True)
class Candidate:
    """One coarse hypothesis: thermal native pixels -> rgb native pixels, and its score."""

    homography: np.ndarray
    score: float
    fov: float
    roll: float


def _shrunk(thermal: np.ndarray, fov: float) -> tuple[np.ndarray, np.ndarray]:
    """The thermal image at the size it would have in the coarse rgb image; and that resize as a matrix."""
    th, tw = thermal.shape
    k = fov * COARSE_WIDTH / tw
    small = cv2.resize(thermal, (max(8, round(tw * k)), max(8, round(th * k))), interpolation=cv2.INTER_AREA)
    return small, scale_matrix(small.shape[1] / tw, small.shape[0] / th)


def _template(small: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """Field of the shrunk thermal image rolled, cropped to its centre; and the matrix shrunk -> template."""
    sh, sw = small.shape
    rotate = np.vstack([cv2.getRotationMatrix2D(((sw - 1) / 2, (sh - 1) / 2), -roll, 1.0), [0, 0, 1]])
    rolled = cv2.warpAffine(small, rotate[:2], (sw, sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    field = orientation_field(rolled, sigma=1.0)
    cw, ch = max(4, round(sw * TEMPLATE_SHARE)), max(4, round(sh * TEMPLATE_SHARE))
    x0, y0 = (sw - cw) // 2, (sh - ch) // 2
    crop = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    return np.ascontiguousarray(field[y0:y0 + ch, x0:x0 + cw]), crop @ rotate


def _window_energy(summed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sum of the padded field's energy under every template position, from its integral image."""
    h, w = size
    return (summed[h:, w:] - summed[:-h, w:] - summed[h:, :-w] + summed[:-h, :-w]).astype(np.float32)


@dataclass(frozen=True)
class _RgbField:
    padded: np.ndarray  # orientation field, zero-padded
    summed: np.ndarray  # integral image of its energy
    floor: float  # least energy per pixel a window is credited with
    to_coarse: np.ndarray  # rgb native -> coarse pixels


def _score_map(rgb: _RgbField, template: np.ndarray) -> np.ndarray:
    """Cosine similarity of the template with every window, the window norm floored so that windows
    over the zero padding (little energy) cannot score high by matching a sliver of edges."""
    raw = cv2.matchTemplate(rgb.padded, template, cv2.TM_CCORR)
    energy = _window_energy(rgb.summed, template.shape[:2])
    floor = rgb.floor
    t_norm = float(np.sqrt((template * template).sum())) + 1e-9
    return raw / (t_norm * np.sqrt(np.maximum(energy, floor * template.shape[0] * template.shape[1])))


def _rgb_field(rgb_gray: np.ndarray) -> _RgbField:
    small = resize_to_width(rgb_gray, COARSE_WIDTH)
    field = orientation_field(small, sigma=1.0)
    pad = round(PAD_SHARE * COARSE_WIDTH)
    padded = cv2.copyMakeBorder(field, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0))
    summed = cv2.integral((padded * padded).sum(axis=2), sdepth=cv2.CV_64F)
    floor = 0.5 * float((field * field).sum(axis=2).mean())
    h, w = rgb_gray.shape
    return _RgbField(padded, summed, floor, scale_matrix(small.shape[1] / w, small.shape[0] / h))


def fov_candidates() -> np.ndarray:
    n = int(math.ceil(math.log(FOV_RANGE[1] / FOV_RANGE[0]) / math.log(FOV_STEP))) + 1
    return FOV_RANGE[0] * FOV_STEP ** np.arange(n)


def coarse_search(thermals: list[np.ndarray], rgbs: list[np.ndarray], keep: int = 3) -> list[Candidate]:
    """Best ``keep`` distinct hypotheses for one rig (lists of gray [0, 1] images, one size per camera)."""
    fields = [_rgb_field(rgb) for rgb in rgbs]
    pad = round(PAD_SHARE * COARSE_WIDTH)
    found: list[Candidate] = []
    for fov in fov_candidates():
        shrunk = [_shrunk(thermal, fov) for thermal in thermals]
        for roll in ROLL_DEGREES:
            total, to_template = None, None
            for (small, to_small), rgb in zip(shrunk, fields):
                template, rolled_crop = _template(small, roll)
                to_template = rolled_crop @ to_small
                scores = _score_map(rgb, template)
                total = scores if total is None else total + scores
            total /= len(thermals)
            _, best, _, (u, v) = cv2.minMaxLoc(total)
            place = np.array([[1, 0, u - pad], [0, 1, v - pad], [0, 0, 1]], np.float64)
            to_rgb = np.linalg.inv(fields[0].to_coarse) @ place @ to_template
            found.append(Candidate(to_rgb / to_rgb[2, 2], float(best), float(fov), float(roll)))
    found.sort(key=lambda c: -c.score)
    return _distinct(found, thermals[0].shape[::-1], keep)


def _distinct(ranked: list[Candidate], thermal_size: tuple[int, int], keep: int) -> list[Candidate]:
    """The best candidates whose thermal centres lie apart (more than 4 % of the thermal width)."""
    centre = np.array([(thermal_size[0] - 1) / 2, (thermal_size[1] - 1) / 2, 1.0])
    chosen: list[tuple[Candidate, np.ndarray]] = []
    for cand in ranked:
        c = cand.homography @ centre
        c = c[:2] / c[2]
        reach = 0.04 * np.linalg.norm(cand.homography[:2, :2] @ np.array([thermal_size[0], 0.0]))
        if all(np.linalg.norm(c - other) > reach for _, other in chosen):
            chosen.append((cand, c))
        if len(chosen) == keep:
            break
    return [cand for cand, _ in chosen]
