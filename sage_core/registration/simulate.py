"""A misaligned thermal camera made from a registered pair, with the true homography known.

Benchmarks and tests need rigs whose answer is known. From a pre-registered (ir, vis) pair,
we pick where a thermal camera would look in the rgb image (a field of view of 60-95 % of the
rgb width, a position, a roll, a little perspective) and at what resolution (55-100 % of the
rgb pixels it covers), and render the ir image as that camera would see it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Shapes of thermal sensors (w:h) drawn from.
THERMAL_ASPECTS = (4 / 3, 5 / 4, 16 / 12.8, 16 / 9)


@dataclass(frozen=True)
class RigGeometry:
    """Where a simulated thermal camera looks: thermal pixels -> rgb pixels, and its image size."""

    homography: np.ndarray
    thermal_size: tuple[int, int]  # (w, h)


def random_rig(rgb_size: tuple[int, int], rng: np.random.Generator, fov: tuple[float, float] = (0.6, 0.95),
               resolution: tuple[float, float] = (0.55, 1.0), max_roll: float = 5.0,
               perspective: float = 0.01) -> RigGeometry:
    """A thermal camera seeing part of an rgb image of ``rgb_size`` (w, h), drawn from ``rng``.

    ``fov``: thermal view width / rgb width; ``resolution``: thermal pixels per rgb pixel it
    covers (linear); ``perspective``: corner jitter as a share of the view width.
    """
    w, h = rgb_size
    aspect = float(rng.choice(THERMAL_ASPECTS))
    roll = math.radians(rng.uniform(-max_roll, max_roll))
    # The rolled view must fit inside the rgb image: shrink the field of view if it does not.
    view_w = rng.uniform(*fov) * w
    for _ in range(50):
        view_h = view_w / aspect
        span_x = view_w * abs(math.cos(roll)) + view_h * abs(math.sin(roll))
        span_y = view_w * abs(math.sin(roll)) + view_h * abs(math.cos(roll))
        if span_x <= 0.97 * w and span_y <= 0.97 * h:
            break
        view_w *= 0.97
    cx = rng.uniform(span_x / 2, w - span_x / 2)
    cy = rng.uniform(span_y / 2, h - span_y / 2)
    pixels = rng.uniform(*resolution)
    tw = max(32, round(view_w * pixels))
    th = max(24, round(tw / aspect))
    half = np.array([[-view_w, -view_h], [view_w, -view_h], [view_w, view_h], [-view_w, view_h]]) / 2
    half += rng.uniform(-perspective, perspective, size=(4, 2)) * view_w
    rot = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    quad = half @ rot.T + [cx, cy]
    corners = np.array([[-0.5, -0.5], [tw - 0.5, -0.5], [tw - 0.5, th - 0.5], [-0.5, th - 0.5]])
    homography = cv2.getPerspectiveTransform(corners.astype(np.float32), quad.astype(np.float32))
    return RigGeometry(homography / homography[2, 2], (tw, th))


def render_thermal(ir: np.ndarray, rig: RigGeometry) -> np.ndarray:
    """The registered ir image as the rig's thermal camera sees it (its size, its pixels)."""
    tw = rig.thermal_size[0]
    view_w = np.linalg.norm(rig.homography[:2, :2] @ np.array([tw, 0.0]))
    shrink = view_w / tw  # rgb pixels per thermal pixel
    # A real sensor integrates over its pixel: blur before sampling so that shrinking does not alias.
    source = cv2.GaussianBlur(ir, (0, 0), 0.45 * shrink) if shrink > 1.05 else ir
    return cv2.warpPerspective(source, rig.homography, rig.thermal_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
