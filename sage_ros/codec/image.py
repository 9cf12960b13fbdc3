"""sensor_msgs/Image <-> numpy, without cv_bridge (which does not install everywhere).

Works on any object with the Image fields (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``): rclpy messages, rosbags' dataclasses, our
:class:`~sage_ros.codec.cdr.RawImage`, so it is tested without ROS. Row padding
(``step`` larger than ``width * pixel size``) and the big-endian flag are
honoured; every problem raises :class:`~sage_ros.codec.encodings.BadImage` with a ``kind`` the node counts.
"""

from __future__ import annotations

import numpy as np

from sage_ros.codec.encodings import ENCODINGS, BadImage


def image_to_array(msg, allowed: tuple[str, ...] | None = None, finite: bool = True) -> np.ndarray:
    """Message -> H x W (one channel) or H x W x C array in the message's own channel order.

    The array is a fresh copy in native byte order (message buffers are reused). ``finite``: a float image with
    NaN or inf is refused (kind ``non_finite``); a depth image's NaN means "no depth" and passes.
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
    if finite and spec.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadImage("non_finite", f"{encoding} image holds {int((~np.isfinite(array)).sum())} NaN/inf values")
    return array[..., 0] if spec.channels == 1 else array


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
