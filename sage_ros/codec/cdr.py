"""Serialized sensor_msgs/Image (CDR, as rmw_fastrtps writes it) read and written directly, without ROS.

For a node that takes and publishes images serialized (``raw=True`` subscriptions, ``publish(bytes)``):
rclpy's own conversion copies the pixels three times each way (C message, ``bytes``, ``array.array``),
each copy into freshly faulted pages; these copy them once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from sage_ros.codec.encodings import BadImage
from sage_ros.codec.header import Header, Stamp
from sage_ros.codec.image import array_to_image_fields

#: Encapsulation header -> struct byte order: plain CDR, big or little endian.
_CDR_ORDER = {b"\x00\x00": ">", b"\x00\x01": "<"}


@dataclass
class RawImage:
    """A sensor_msgs/Image read from its serialized bytes: the Image fields, ``header`` a
    :class:`~sage_ros.codec.header.Header` and
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
    try:
        reader = _CdrReader(payload)
        sec, nanosec = reader.number("i"), reader.number("I")
        header = Header(Stamp(sec, nanosec), reader.string())
        height, width, encoding = reader.number("I"), reader.number("I"), reader.string()
        is_bigendian, step = reader.number("B"), reader.number("I")
        data = reader.take(reader.number("I"))
    except BadImage as exc:
        return RawImage(Header.at(0), error=exc)
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
