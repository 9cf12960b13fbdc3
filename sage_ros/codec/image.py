"""sensor_msgs/Image <-> numpy, without cv_bridge (which does not install everywhere).

Works on any object with the Image fields (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``), so it is tested without ROS. Row padding
(``step`` larger than ``width * pixel size``) and the big-endian flag are
honoured; every problem raises :class:`BadImage` with a ``kind`` the node counts.

For a node that takes and publishes images serialized (``raw=True`` subscriptions, ``publish(bytes)``),
:func:`image_from_cdr` and :func:`image_to_cdr` read and write the CDR bytes directly: rclpy's own
conversion copies the pixels three times each way (C message, ``bytes``, ``array.array``), each copy into
freshly faulted pages (a quarter of the node's CPU at 1280x1024); these copy them once.
"""

from __future__ import annotations

import struct
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
THERMAL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
RGB_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
#: What each camera's images may be (live and recorded alike).
CAMERA_ENCODINGS = {Camera.THERMAL: THERMAL_ENCODINGS, Camera.RGB: RGB_ENCODINGS}


def stamp_ns(header) -> int:
    """A message header's stamp in nanoseconds (rclpy, rosbags or our own header objects)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def image_to_array(msg, allowed: tuple[str, ...] | None = None) -> np.ndarray:
    """Message -> H x W (one channel) or H x W x C array in the message's own channel order.

    The array is a fresh copy in native byte order (message buffers are reused).
    """
    if getattr(msg, "error", None) is not None:  # a RawImage whose bytes were not an Image
        raise msg.error
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


def array_to_image_fields(array: np.ndarray, encoding: str, with_data: bool = True) -> dict:
    """numpy image -> the Image fields (``height width encoding is_bigendian step data``; no ``data`` without
    ``with_data``)."""
    spec = ENCODINGS[encoding]
    expected_shape_tail = () if spec.channels == 1 else (spec.channels,)
    if array.dtype != spec.dtype or array.shape[2:] != expected_shape_tail or array.ndim not in (2, 3):
        raise ValueError(f"array {array.dtype} {array.shape} does not fit encoding {encoding}")
    array = np.ascontiguousarray(array)
    native_big = np.little_endian is False
    fields = {
        "height": int(array.shape[0]),
        "width": int(array.shape[1]),
        "encoding": encoding,
        "is_bigendian": int(native_big and spec.dtype.itemsize > 1),
        "step": int(array.shape[1] * spec.channels * spec.dtype.itemsize),
    }
    if with_data:
        fields["data"] = array.tobytes()
    return fields


def to_output_encoding(image: np.ndarray, encoding: str) -> np.ndarray:
    """A fused uint8 gray or BGR image -> the array layout of ``encoding`` (mono8, bgr8, rgb8)."""
    if encoding == "mono8":
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[..., ::-1]) if encoding == "rgb8" else image


# ----- serialized messages (CDR, as rmw_fastrtps writes them) ----------------------------------------------

#: Encapsulation header -> struct byte order: plain CDR, big or little endian.
_CDR_ORDER = {b"\x00\x00": ">", b"\x00\x01": "<"}


@dataclass
class RawImage:
    """A sensor_msgs/Image read from its serialized bytes: the Image fields, ``header`` a std_msgs/Header and
    ``data`` a view of the payload (no copy). ``error``: why the bytes are not an Image (then
    :func:`image_to_array` raises it, so a subscription callback counts it as it counts any bad image)."""

    header: object
    height: int = 0
    width: int = 0
    encoding: str = ""
    is_bigendian: int = 0
    step: int = 0
    data: memoryview | bytes = b""
    error: BadImage | None = None


class _CdrReader:
    def __init__(self, payload: bytes) -> None:
        self.view = memoryview(payload)
        if len(payload) < 4 or bytes(payload[:2]) not in _CDR_ORDER:
            raise BadImage("data_length", f"not a plain-CDR serialized message ({len(payload)} bytes)")
        self.order, self.offset = _CDR_ORDER[bytes(payload[:2])], 0  # offsets count from after the encapsulation

    def take(self, size: int, align: int = 1) -> memoryview:
        start = 4 + self.offset + (-self.offset % align)
        if start + size > len(self.view):
            raise BadImage("data_length", f"serialized Image ends early ({len(self.view)} bytes)")
        self.offset = start + size - 4
        return self.view[start:start + size]

    def number(self, code: str) -> int:
        size = struct.calcsize(code)
        return struct.unpack(self.order + code, self.take(size, size))[0]

    def string(self) -> str:
        length = self.number("I")  # includes the terminating NUL
        return bytes(self.take(length))[:-1].decode("utf-8", errors="replace")


def image_from_cdr(payload: bytes) -> RawImage:
    """A serialized sensor_msgs/Image (what a ``raw=True`` subscription delivers) -> :class:`RawImage`, whose
    pixels stay in ``payload``. Never raises: malformed bytes give a RawImage with ``error`` set."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    try:
        reader = _CdrReader(payload)
        sec, nanosec = reader.number("i"), reader.number("I")
        header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=reader.string())
        height, width, encoding = reader.number("I"), reader.number("I"), reader.string()
        is_bigendian, step = reader.number("B"), reader.number("I")
        data = reader.take(reader.number("I"))
    except BadImage as exc:
        return RawImage(Header(), error=exc)
    return RawImage(header, height, width, encoding, is_bigendian, step, data)


def _cdr_string(text: str, offset: int) -> tuple[bytes, int]:
    """(padding, length, characters, NUL) for a string starting at ``offset``, and the offset after it."""
    encoded = text.encode("utf-8") + b"\0"
    padding = -offset % 4
    return b"\0" * padding + struct.pack("<I", len(encoded)) + encoded, offset + padding + 4 + len(encoded)


def image_to_cdr(header, array: np.ndarray, encoding: str) -> bytes:
    """``header`` (stamp, frame_id) + numpy image -> a serialized little-endian sensor_msgs/Image, for
    ``publisher.publish(bytes)``: the pixels are copied once, straight into the payload."""
    fields = array_to_image_fields(array, encoding, with_data=False)
    head = struct.pack("<iI", header.stamp.sec, header.stamp.nanosec)
    frame_id, offset = _cdr_string(header.frame_id, len(head))
    head += frame_id + b"\0" * (-offset % 4) + struct.pack("<II", fields["height"], fields["width"])
    encoding_bytes, offset = _cdr_string(encoding, offset + (-offset % 4) + 8)
    head += encoding_bytes + struct.pack("<B", fields["is_bigendian"])
    offset += 1
    pixels = memoryview(np.ascontiguousarray(array)).cast("B")
    head += b"\0" * (-offset % 4) + struct.pack("<II", fields["step"], len(pixels))
    return b"".join((b"\x00\x01\x00\x00", head, pixels))
