"""sensor_msgs/Image and CompressedImage in a bag <-> numpy, through rosbags' typestore (no ROS install).

Decoding reuses the node's conversion (``codec.image.image_to_array``) and the CompressedImage codec
(``codec.compressed.decode_compressed``), so a bag message is judged exactly as the node judges the same
message live; every problem is a ``BadImage`` with the kind the node counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rosbags.typesys import Stores, get_typestore

from sage_ros.codec.compressed import decode_compressed
from sage_ros.codec.encodings import BadImage
from sage_ros.codec.header import LoggedHeader, Stamp
from sage_ros.codec.image import array_to_image_fields, image_to_array

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)
#: Kilted's definitions (our ROS 2 wheels); sensor_msgs/Image and CompressedImage are the same in every ROS 2.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
_Image = TYPESTORE.types[IMAGE]
_Compressed = TYPESTORE.types[COMPRESSED]
_Header = TYPESTORE.types["std_msgs/msg/Header"]
_Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
_CameraInfo = TYPESTORE.types[CAMERA_INFO]
_Roi = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"]


@dataclass(frozen=True)
class Decoded:
    array: np.ndarray  # in the channel order ``encoding`` names
    encoding: str
    header: LoggedHeader


def _header(stamp_ns: int, frame_id: str):
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return _Header(stamp=_Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def decode_image(msgtype: str, raw: bytes | memoryview, log_ns: int, allowed: tuple[str, ...],
                 finite: bool = True) -> Decoded:
    """A serialized Image or CompressedImage -> its array, encoding and header; BadImage when it cannot be.
    ``finite`` False: a float image may hold NaN (a depth image's "no depth")."""
    try:
        msg = TYPESTORE.deserialize_cdr(raw, msgtype)
    except Exception as exc:  # noqa: BLE001 - rosbags raises assorted errors on damaged CDR
        raise BadImage("deserialize", f"{msgtype} message of {len(raw)} bytes cannot be deserialized: "
                       f"{type(exc).__name__}: {exc}") from None
    header = LoggedHeader(Stamp(msg.header.stamp.sec, msg.header.stamp.nanosec), msg.header.frame_id, log_ns)
    if msgtype == COMPRESSED:
        array, encoding = decode_compressed(msg.format, msg.data, allowed, finite)
    else:
        array, encoding = image_to_array(msg, allowed, finite), msg.encoding
    return Decoded(array, encoding, header)


def image_message(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> bytes:
    """A serialized sensor_msgs/Image of ``array`` (in ``encoding``'s layout)."""
    fields = array_to_image_fields(array, encoding)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    return bytes(TYPESTORE.serialize_cdr(_Image(header=_header(stamp_ns, frame_id), **fields), IMAGE))


def compressed_message(format_text: str, data: bytes, stamp_ns: int, frame_id: str) -> bytes:
    """A serialized sensor_msgs/CompressedImage."""
    msg = _Compressed(header=_header(stamp_ns, frame_id), format=format_text, data=np.frombuffer(data, np.uint8))
    return bytes(TYPESTORE.serialize_cdr(msg, COMPRESSED))


def read_camera_info(raw: bytes | memoryview):
    """A serialized CameraInfo (rosbags dataclass), or None when it cannot be read (then none is published)."""
    try:
        return TYPESTORE.deserialize_cdr(raw, CAMERA_INFO)
    except Exception:  # noqa: BLE001 - rosbags raises assorted errors on damaged CDR
        return None


def camera_info_message(fields: dict, stamp_ns: int, frame_id: str) -> bytes:
    """A serialized sensor_msgs/CameraInfo from ``camera_info.fused_camera_info_fields``'s fields."""
    arrays = {name: np.asarray(fields[name], dtype=np.float64) for name in ("d", "k", "r", "p")}
    msg = _CameraInfo(header=_header(stamp_ns, frame_id), **{**fields, **arrays},
                      roi=_Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    return bytes(TYPESTORE.serialize_cdr(msg, CAMERA_INFO))


def first_encoding(msgtype: str, raw: bytes | memoryview) -> str:
    """What the first message of a topic says about its pixels (``encoding``, or a compressed ``format``'s
    leading encoding); "" when it cannot be read. Topic detection uses it when names do not tell."""
    try:
        msg = TYPESTORE.deserialize_cdr(raw, msgtype)
    except Exception:  # noqa: BLE001 - only a hint: an unreadable message gives none
        return ""
    return msg.format.partition(";")[0].strip() if msgtype == COMPRESSED else msg.encoding
