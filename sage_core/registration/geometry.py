"""Small matrix helpers: resizes in pixel-centre convention, the error grid, sanity of a homography."""

from __future__ import annotations

import cv2
import numpy as np

#: Reprojection errors are reported in pixels of the RGB image scaled to this width.
REPORT_WIDTH = 640


def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """Pixel-centre-exact resize by (sx, sy): x' = (x + 0.5) * s - 0.5, as cv2.resize maps pixels."""
    sy = sx if sy is None else sy
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)


def normalized(h: np.ndarray) -> np.ndarray:
    """The homography scaled so that h[2, 2] == 1."""
    return h / h[2, 2]


def transform_points(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """N x 2 points through a 3x3 homography."""
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(1, -1, 2), h)[0]


def grid_points(size: tuple[int, int], n: int = 5, low: float = 0.1, high: float = 0.9) -> np.ndarray:
    """An n x n grid of pixels covering ``low``..``high`` of an image of ``size`` (w, h)."""
    w, h = size
    xs, ys = np.linspace(low * (w - 1), high * (w - 1), n), np.linspace(low * (h - 1), high * (h - 1), n)
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)


def grid_error(estimate: np.ndarray, truth: np.ndarray, thermal_size: tuple[int, int], rgb_width: int) -> float:
    """Mean distance between two thermal -> rgb homographies over a 5x5 thermal grid (10-90 %),
    in pixels of the RGB image scaled to 640 wide."""
    points = grid_points(thermal_size)
    distance = np.linalg.norm(transform_points(estimate, points) - transform_points(truth, points), axis=1)
    return float(distance.mean() * REPORT_WIDTH / rgb_width)


def footprint(h: np.ndarray, thermal_size: tuple[int, int]) -> np.ndarray:
    """The thermal image's four corners in rgb pixels (tl, tr, br, bl)."""
    w, t = thermal_size
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, t - 0.5], [-0.5, t - 0.5]], np.float64)
    return transform_points(h, corners)


def implausibility(h: np.ndarray, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> str | None:
    """Why this homography cannot be a thermal camera beside an rgb camera, or None if it can."""
    if not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
        return "the estimated transform is degenerate"
    quad = footprint(h, thermal_size).astype(np.float32)
    if not cv2.isContourConvex(quad.reshape(-1, 1, 2)):
        return "the estimated transform folds the thermal image (not a camera view)"
    area = abs(cv2.contourArea(quad))
    rgb_area = float(rgb_size[0] * rgb_size[1])
    inside = cv2.intersectConvexConvex(
        quad, np.array([[0, 0], [rgb_size[0], 0], [rgb_size[0], rgb_size[1]], [0, rgb_size[1]]], np.float32))[0]
    if area < 0.05 * rgb_area or area > 4.0 * rgb_area:
        return f"the thermal view would cover {100 * area / rgb_area:.0f} % of the rgb image"
    if inside < 0.5 * area:
        return "the thermal view would lie mostly outside the rgb image (the cameras do not overlap)"
    return None
