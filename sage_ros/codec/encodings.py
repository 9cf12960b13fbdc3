"""The pixel encodings of sensor_msgs/Image the node takes and writes, and the conversions between them.

Which encodings each camera may send (``CAMERA_ENCODINGS``, live and recorded alike), what each means
in numpy terms (``ENCODINGS``), RGB-camera images to BGR (:func:`to_bgr`) and the fused BGR or gray
image to the output encoding (:func:`to_output_encoding`). Every problem with a message raises
:class:`BadImage` with a ``kind`` the node counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.cameras import Camera


class BadImage(ValueError):
    """A message that cannot be turned into an image; ``kind`` names the category for counting."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Encoding:
    dtype: np.dtype
    channels: int
    order: str  # "gray", "rgb", "bgr", "rgba", "bgra"


ENCODINGS: dict[str, Encoding] = {
    "mono8": Encoding(np.dtype(np.uint8), 1, "gray"),
    "8UC1": Encoding(np.dtype(np.uint8), 1, "gray"),
    "mono16": Encoding(np.dtype(np.uint16), 1, "gray"),
    "16UC1": Encoding(np.dtype(np.uint16), 1, "gray"),
    "32FC1": Encoding(np.dtype(np.float32), 1, "gray"),
    "rgb8": Encoding(np.dtype(np.uint8), 3, "rgb"),
    "bgr8": Encoding(np.dtype(np.uint8), 3, "bgr"),
    "rgba8": Encoding(np.dtype(np.uint8), 4, "rgba"),
    "bgra8": Encoding(np.dtype(np.uint8), 4, "bgra"),
}
#: What a thermal camera may send.
THERMAL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
#: What an RGB camera may send (gray cameras too).
RGB_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
#: What a depth image registered to the rgb camera may be: millimetres (16UC1, mono16) or metres (32FC1, NaN: none).
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
#: What each camera's images may be (live and recorded alike).
CAMERA_ENCODINGS = {Camera.THERMAL: THERMAL_ENCODINGS, Camera.RGB: RGB_ENCODINGS}


def to_bgr(array: np.ndarray, encoding: str) -> np.ndarray:
    """RGB-camera array in its message order -> BGR (or gray kept as H x W)."""
    order = ENCODINGS[encoding].order
    if order in ("gray", "bgr"):
        return array
    if order == "rgb":
        return array[..., ::-1]
    if order == "rgba":
        return array[..., 2::-1]
    return array[..., :3]  # bgra


def to_output_encoding(image: np.ndarray, encoding: str) -> np.ndarray:
    """A fused uint8 gray or BGR image -> the array layout of ``encoding`` (mono8, bgr8, rgb8)."""
    if encoding == "mono8":
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[..., ::-1]) if encoding == "rgb8" else image
