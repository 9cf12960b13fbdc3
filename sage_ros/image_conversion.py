"""sensor_msgs/Image <-> numpy, without cv_bridge (which does not install everywhere).

Works on any object with the Image fields (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``), so it is tested without ROS. Row padding
(``step`` larger than ``width * pixel size``) and the big-endian flag are
honoured; every problem raises :class:`BadImage` with a ``kind`` the node counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


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
THERMAL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
RGB_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


def image_to_array(msg, allowed: tuple[str, ...] | None = None) -> np.ndarray:
    """Message -> H x W (one channel) or H x W x C array in the message's own channel order.

    The array is a fresh copy in native byte order (message buffers are reused).
    """
    encoding = msg.encoding
    if encoding not in ENCODINGS or (allowed is not None and encoding not in allowed):
        accepted = ", ".join(allowed if allowed is not None else ENCODINGS)
        raise BadImage("encoding", f"unsupported encoding {encoding!r}; expected one of {accepted}")
    spec = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise BadImage("zero_size", f"image has zero size ({width}x{height})")
    row_bytes = width * spec.channels * spec.dtype.itemsize
    if step < row_bytes:
        raise BadImage("data_length", f"step {step} is smaller than width x pixel size = {row_bytes} bytes")
    data = msg.data
    size = len(data)
    if size != step * height:
        raise BadImage("data_length", f"data has {size} bytes; {encoding} {width}x{height} with step {step} "
                                      f"needs {step * height}")
    try:  # bytes, bytearray, array.array (rclpy's type for uint8[]), memoryview: no copy
        buffer = np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list of ints
        buffer = np.asarray(data, dtype=np.uint8)
    rows = buffer.reshape(height, step)[:, :row_bytes]
    dtype = spec.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    array = np.ascontiguousarray(rows).view(dtype).reshape(height, width, spec.channels)
    array = array.astype(spec.dtype, copy=True)  # native order, owned
    if spec.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadImage("non_finite", f"{encoding} image holds {int((~np.isfinite(array)).sum())} NaN/inf values")
    return array[..., 0] if spec.channels == 1 else array


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


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict:
    """numpy image -> the Image fields (``height width encoding is_bigendian step data``)."""
    spec = ENCODINGS[encoding]
    expected_shape_tail = () if spec.channels == 1 else (spec.channels,)
    if array.dtype != spec.dtype or array.shape[2:] != expected_shape_tail or array.ndim not in (2, 3):
        raise ValueError(f"array {array.dtype} {array.shape} does not fit encoding {encoding}")
    array = np.ascontiguousarray(array)
    native_big = np.little_endian is False
    return {
        "height": int(array.shape[0]),
        "width": int(array.shape[1]),
        "encoding": encoding,
        "is_bigendian": int(native_big and spec.dtype.itemsize > 1),
        "step": int(array.shape[1] * spec.channels * spec.dtype.itemsize),
        "data": array.tobytes(),
    }


def to_output_encoding(image: np.ndarray, encoding: str) -> np.ndarray:
    """A fused uint8 gray or BGR image -> the array layout of ``encoding`` (mono8, bgr8, rgb8)."""
    if encoding == "mono8":
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[..., ::-1]) if encoding == "rgb8" else image
