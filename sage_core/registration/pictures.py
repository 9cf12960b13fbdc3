"""Before/after pictures for a person to judge a calibration: checkerboard blend and edge overlay.

"Before" is what the node does without a homography (the thermal image resized onto the rgb
image); "after" applies the estimated one. In the checkerboard, thermal tiles (false colour)
alternate with visible tiles: edges must run straight across tile borders. In the overlay, rgb
edges are green and thermal edges magenta; where they coincide they turn white.
"""

from __future__ import annotations

import cv2
import numpy as np

from sage_core.registration.features import gradients, to_gray01
from sage_core.registration.geometry import scale_matrix
from sage_core.visualize import mosaic

#: Height of each panel in the picture.
PANEL_HEIGHT = 300


def _edges(gray01: np.ndarray) -> np.ndarray:
    gx, gy = gradients(gray01, 1.5)
    magnitude = np.sqrt(gx * gx + gy * gy)
    return np.clip(magnitude / (np.percentile(magnitude, 95) + 1e-6), 0.0, 1.0)


def checkerboard(thermal_bgr: np.ndarray, rgb_bgr: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Thermal and rgb tiles alternating (both already on the rgb grid, BGR uint8)."""
    h, w = rgb_bgr.shape[:2]
    size = max(8, w // tiles)
    ys, xs = np.mgrid[0:h, 0:w]
    use_thermal = ((ys // size + xs // size) % 2 == 0)[..., None]
    return np.where(use_thermal, thermal_bgr, rgb_bgr)


def edge_overlay(thermal01: np.ndarray, rgb01: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Dimmed rgb image with rgb edges in green and thermal edges in magenta."""
    t, r = _edges(thermal01) * valid, _edges(rgb01)
    base = 0.35 * rgb01
    picture = np.stack([np.maximum(base, t), np.maximum(base, r), np.maximum(base, t)], axis=2)
    return (255 * np.clip(picture, 0, 1)).astype(np.uint8)


def _on_rgb_grid(thermal01: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    # Replicated borders and an eroded mask: the outline of the thermal image is not an edge of the scene.
    warped = cv2.warpPerspective(thermal01, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpPerspective(np.ones_like(thermal01), matrix, size, flags=cv2.INTER_NEAREST)
    return warped, cv2.erode(valid, np.ones((5, 5), np.uint8))


def before_after(thermal: np.ndarray, rgb_bgr: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """One picture: [before | after] checkerboards above [before | after] edge overlays."""
    rh, rw = rgb_bgr.shape[:2]
    scale = PANEL_HEIGHT / rh
    to_panel = scale_matrix(scale)
    size = (max(1, round(rw * scale)), PANEL_HEIGHT)
    rgb = cv2.resize(rgb_bgr if rgb_bgr.ndim == 3 else cv2.cvtColor(rgb_bgr, cv2.COLOR_GRAY2BGR), size,
                     interpolation=cv2.INTER_AREA)[..., :3]
    rgb01 = to_gray01(rgb, stretch=False)
    thermal01 = to_gray01(thermal, stretch=True)
    th, tw = thermal01.shape
    plain = scale_matrix(rw / tw, rh / th)
    views = {"before (resize only)": plain, "after (estimated homography)": homography}
    checker, overlay = [], []
    for label, matrix in views.items():
        warped, valid = _on_rgb_grid(thermal01, to_panel @ matrix, size)
        coloured = cv2.applyColorMap((255 * warped).astype(np.uint8), cv2.COLORMAP_INFERNO)
        coloured[valid == 0] = 0
        checker.append((f"{label}: checkerboard", checkerboard(coloured, rgb)))
        overlay.append((f"{label.split()[0]}: edges (rgb green, thermal magenta)", edge_overlay(warped, rgb01, valid)))
    rows = [mosaic(checker), mosaic(overlay)]
    separator = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([rows[0], separator, rows[1]], axis=0)
