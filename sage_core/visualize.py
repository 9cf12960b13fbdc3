"""Pictures for people: labelled side-by-side mosaics of thermal, visible and fused images."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from sage_core.color import gray_to_uint8


def to_display_bgr(image: np.ndarray) -> np.ndarray:
    """Any image we handle (gray/BGR/BGRA, 8/16-bit, float [0, 1]) -> BGR uint8 for display.

    16-bit images are stretched between their 1st and 99th percentiles, as a
    thermal viewer would, since raw counts fill a small part of the range.
    """
    if image.dtype == np.uint16:
        lo, hi = np.percentile(image, (1, 99))
        image = gray_to_uint8((image.astype(np.float32) - lo) / max(float(hi - lo), 1.0))
    elif image.dtype != np.uint8:
        image = gray_to_uint8(image.astype(np.float32))
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[0], image.shape[1]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def mosaic(panels: Sequence[tuple[str, np.ndarray]], height: int | None = None) -> np.ndarray:
    """Panels side by side, each scaled to a common height and labelled in its corner."""
    if not panels:
        raise ValueError("mosaic needs at least one panel")
    height = height or max(image.shape[0] for _, image in panels)
    tiles = []
    for label, image in panels:
        tile = to_display_bgr(image)
        if tile.shape[0] != height:
            width = max(1, round(tile.shape[1] * height / tile.shape[0]))
            tile = cv2.resize(tile, (width, height), interpolation=cv2.INTER_AREA)
        tile = tile.copy()
        scale = max(0.4, height / 600)
        thickness = max(1, round(scale * 2))
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(tile, (0, 0), (tw + 12, th + 14), (0, 0, 0), -1)
        cv2.putText(tile, label, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
        tiles.append(tile)
    separator = np.full((height, 4, 3), 255, np.uint8)
    strip = [tiles[0]]
    for tile in tiles[1:]:
        strip += [separator, tile]
    return np.concatenate(strip, axis=1)
