"""sensor_msgs/CompressedImage <-> numpy, as ROS 2 image_transport's plugins write it, without ROS.

Works on the two plain fields of the message (``format`` text and ``data`` bytes), so the node (rclpy
messages) and the bag tools (rosbags dataclasses) share it and it is tested without ROS.

What the ``format`` field holds, and what :func:`decode_compressed` makes of it:

- ``compressed`` transport: ``"<encoding>; jpeg compressed <payload>"`` or
  ``"<encoding>; png compressed <payload>"`` (also ``tiff``). Colour images are converted to BGR
  before encoding (payload ``bgr8``, ``bgra8`` for PNG with alpha); gray JPEG is ``mono8``; gray
  PNG keeps its depth and writes no payload name (``"mono16; png compressed "``). Old publishers
  wrote only ``"jpeg"`` or ``"png"`` (payload BGR or gray).
- ``compressedDepth`` transport: ``"16UC1; compressedDepth png"`` (older: ``"16UC1; compressedDepth"``),
  the data starting with a 12-byte ConfigHeader (int32 format, two float32 inverse-depth quantisation
  parameters) before the PNG. 32FC1 images travel as quantised inverse depth (0 meaning none).
  The ``rvl`` codec of that transport is refused by name.

The returned encoding describes the returned array, which may differ from the encoding the sender
started from: an ``rgb8`` image sent as ``"rgb8; jpeg compressed bgr8"`` comes back as ``bgr8`` (the
same pixels, no channel swap spent), a ``mono16`` one sent through JPEG as ``mono8``. Every problem
raises :class:`BadCompressedImage`, a ``BadImage`` (with a ``kind`` the node counts) and a
``FusionInputError``.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from sage_core.errors import FusionInputError
from sage_ros.codec.encodings import BadImage

#: Codecs of the ``compressed`` transport this module decodes (the word in the format string).
IMAGE_CODECS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "tiff": "tiff", "tif": "tiff"}
#: compressedDepth's ConfigHeader: int32 compression format, float32 depthQuantA, float32 depthQuantB.
DEPTH_HEADER = struct.Struct("<iff")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Colour encodings a compressed payload may name (a gray camera sending one is made gray).
COLOUR_PAYLOADS = ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16")
_MONO_BY_DTYPE = {np.dtype(np.uint8): ("mono8", "8UC1"), np.dtype(np.uint16): ("mono16", "16UC1"),
                  np.dtype(np.float32): ("32FC1",)}
#: What encode_jpeg accepts: encoding -> (channels, the payload name image_transport writes).
_JPEG_INPUTS = {"bgr8": (3, "bgr8"), "rgb8": (3, "bgr8"), "bgra8": (4, "bgr8"), "rgba8": (4, "bgr8"),
                "mono8": (1, "mono8"), "8UC1": (1, "mono8")}
SUPPORTED = ("'jpeg', 'png', 'tiff' (old style), '<encoding>; jpeg|png|tiff compressed [<payload>]', "
             "'<encoding>; compressedDepth [png]'")


class BadCompressedImage(BadImage, FusionInputError):
    """A CompressedImage that cannot be decoded (``kind``: compressed_format, compressed_data, encoding,
    non_finite) or an image that cannot be encoded; the message says what and what is expected."""


def _bytes_of(data) -> np.ndarray:
    """The message's data as a flat uint8 array, without a copy where the type allows."""
    try:  # bytes, bytearray, memoryview, array.array('B') (rclpy), numpy uint8 (rosbags)
        buffer = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        try:  # a plain list of ints
            buffer = np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise BadCompressedImage("compressed_data", f"data of type {type(data).__name__} is not a byte "
                                     "sequence") from None
    if buffer.size == 0:
        raise BadCompressedImage("compressed_data", "compressed image has no data (0 bytes)")
    return buffer


def parse_format(format_text: str) -> tuple[str, str, str]:
    """``format`` -> (the sender's encoding or "", transport "compressed" or "compressedDepth",
    codec "jpeg"/"png"/"tiff"). Raises BadCompressedImage for what no ROS 2 plugin we read writes."""
    if not isinstance(format_text, str):
        raise BadCompressedImage("compressed_format", f"format must be text, got {type(format_text).__name__}")
    encoding, separator, description = (part.strip() for part in format_text.partition(";"))
    if not separator:  # old style: the codec name alone
        codec = IMAGE_CODECS.get(encoding.lower())
        if codec is None:
            raise BadCompressedImage("compressed_format", f"unknown compressed format {format_text!r}; "
                                     f"expected one of {SUPPORTED}")
        return "", "compressed", codec
    words = description.split()
    if words and words[0] == "compressedDepth":
        codec = words[1] if len(words) > 1 else "png"
        if codec != "png":
            raise BadCompressedImage("compressed_format", f"compressedDepth codec {codec!r} in {format_text!r} "
                                     "is not supported; expected png")
        return encoding, "compressedDepth", "png"
    if len(words) >= 2 and words[1] == "compressed" and words[0].lower() in IMAGE_CODECS:
        return encoding, "compressed", IMAGE_CODECS[words[0].lower()]
    raise BadCompressedImage("compressed_format", f"unknown compressed format {format_text!r}; expected one of "
                             f"{SUPPORTED}")


def _jpeg_complete(buffer: np.ndarray) -> bool:
    """Whether JPEG data ends with its EOI marker (FF D9; never inside entropy-coded data, where FF is
    stuffed). OpenCV before 4.6 decodes a truncated JPEG without an error, the missing rows grey."""
    return b"\xff\xd9" in buffer[-64:].tobytes().rstrip(b"\x00")


def _imdecode(buffer: np.ndarray, what: str) -> np.ndarray:
    if buffer[:2].tobytes() == b"\xff\xd8" and not _jpeg_complete(buffer):  # JPEG data, whatever the label
        raise BadCompressedImage("compressed_data", f"{what} data ({buffer.size} bytes) cannot be decoded: "
                                 "truncated (no end-of-image marker)")
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)  # UNCHANGED: 16-bit PNG stays 16-bit
    except cv2.error as exc:
        raise BadCompressedImage("compressed_data", f"{what} data ({buffer.size} bytes) cannot be decoded: "
                                 f"{str(exc).strip().splitlines()[-1]}") from None
    if image is None or image.size == 0:
        raise BadCompressedImage("compressed_data", f"{what} data ({buffer.size} bytes) cannot be decoded: "
                                 "corrupt, truncated, or not that format")
    return image


def _mono_encoding(image: np.ndarray, declared: str) -> str:
    names = _MONO_BY_DTYPE.get(image.dtype)
    if names is None:
        raise BadCompressedImage("encoding", f"decoded a one-channel {image.dtype} image; expected 8-bit, "
                                 "16-bit or float32")
    return declared if declared in names else names[0]


def _name_payload(image: np.ndarray, declared: str, description: str) -> tuple[np.ndarray, str]:
    """The decoded array of the ``compressed`` transport and the encoding of its channel order."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        return (image if image.ndim == 2 else image[..., 0]), _mono_encoding(image, declared)
    if image.dtype != np.uint8 or channels not in (3, 4):
        raise BadCompressedImage("encoding", f"decoded a {channels}-channel {image.dtype} image; expected "
                                 "8-bit gray, BGR or BGRA (16-bit colour is not supported)")
    if declared and declared not in COLOUR_PAYLOADS:  # a gray camera whose payload is colour: make it gray
        code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(image, code), _mono_encoding(image, declared)
    # image_transport's subscriber takes the payload as BGR when tagged "compressed bgr...", or when the
    # format is the codec alone; otherwise as RGB. We name that order instead of swapping channels.
    bgr = not declared or "compressed bgr" in description
    return image, ("bgr8" if bgr else "rgb8") if channels == 3 else ("bgra8" if bgr else "rgba8")


def _decode_depth(buffer: np.ndarray, declared: str) -> tuple[np.ndarray, str]:
    """compressedDepth: skip the ConfigHeader, decode the 16-bit PNG; 32FC1 back from inverse depth."""
    header = None
    if buffer[:len(PNG_SIGNATURE)].tobytes() != PNG_SIGNATURE:  # a ConfigHeader leads, as every version writes
        if buffer.size <= DEPTH_HEADER.size:
            raise BadCompressedImage("compressed_data", f"compressedDepth data has {buffer.size} bytes: no room "
                                     f"for its {DEPTH_HEADER.size}-byte header and a PNG")
        header, buffer = DEPTH_HEADER.unpack(buffer[:DEPTH_HEADER.size].tobytes()), buffer[DEPTH_HEADER.size:]
    image = _imdecode(buffer, "compressedDepth png")
    if image.ndim != 2 or image.dtype != np.uint16:
        raise BadCompressedImage("encoding", f"compressedDepth payload is {image.dtype} with "
                                 f"{1 if image.ndim == 2 else image.shape[2]} channels; expected 16-bit gray")
    if declared != "32FC1":
        return image, declared if declared in ("16UC1", "mono16") else "16UC1"
    if header is None:
        raise BadCompressedImage("compressed_data", "32FC1 compressedDepth data has no header with the "
                                 "quantisation parameters")
    quant_a, quant_b = header[1], header[2]
    values = image.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # 0 means "no value": NaN below
        depth = np.float32(quant_a) / (values - np.float32(quant_b))
    depth[image == 0] = np.nan
    return depth.astype(np.float32), "32FC1"


def decode_compressed(format_text: str, data, allowed: tuple[str, ...] | None = None,
                      finite: bool = True) -> tuple[np.ndarray, str]:
    """A CompressedImage's ``format`` and ``data`` -> (H x W or H x W x C array, its encoding name).

    ``allowed`` (optional) lists the encodings the caller takes (as ``image_to_array``'s); anything else
    raises BadCompressedImage of kind ``encoding``. Float results with NaN/inf raise kind ``non_finite``
    when ``allowed`` is given and ``finite`` (the node's rule for raw float images; a depth image's NaN passes).
    """
    declared, transport, codec = parse_format(format_text)
    buffer = _bytes_of(data)
    if transport == "compressedDepth":
        image, encoding = _decode_depth(buffer, declared)
    else:
        image, encoding = _name_payload(_imdecode(buffer, codec), declared, format_text.partition(";")[2])
    if allowed is not None:
        if encoding not in allowed:
            raise BadCompressedImage("encoding", f"{format_text!r} decodes to {encoding}; expected one of "
                                     f"{', '.join(allowed)}")
        if finite and image.dtype.kind == "f" and not np.isfinite(image).all():
            raise BadCompressedImage("non_finite", f"{encoding} image holds {int((~np.isfinite(image)).sum())} "
                                     "NaN/inf values")
    return np.ascontiguousarray(image), encoding


def encode_jpeg(image: np.ndarray, encoding: str, quality: int = 90) -> tuple[str, bytes]:
    """An 8-bit image in ``encoding``'s channel order -> (format, JPEG bytes) as image_transport's
    ``compressed`` plugin writes them: colour as BGR (``"rgb8; jpeg compressed bgr8"``), gray as
    ``"mono8; jpeg compressed mono8"``."""
    if encoding not in _JPEG_INPUTS:
        raise BadCompressedImage("encoding", f"cannot JPEG-encode {encoding!r}; expected one of "
                                 f"{', '.join(_JPEG_INPUTS)}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise BadCompressedImage("encoding", f"JPEG quality must be an integer in [1, 100], got {quality!r}")
    channels, payload = _JPEG_INPUTS[encoding]
    image = np.asarray(image)
    shape_ok = image.ndim == 2 if channels == 1 else (image.ndim == 3 and image.shape[2] == channels)
    if image.dtype != np.uint8 or not shape_ok or image.size == 0:
        raise BadCompressedImage("encoding", f"array {image.dtype} {image.shape} does not fit {encoding} "
                                 f"(uint8, {channels} channel{'s' if channels > 1 else ''}, non-empty)")
    if encoding.startswith("rgb"):
        image = image[..., 2::-1]
    elif channels == 4:
        image = image[..., :3]
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise BadCompressedImage("encoding", f"OpenCV could not JPEG-encode a {image.shape} image")
    return f"{encoding}; jpeg compressed {payload}", encoded.tobytes()


def encode_png(image: np.ndarray, encoding: str, level: int = 3) -> tuple[str, bytes]:
    """A gray (8 or 16-bit) or bgr8 image -> (format, PNG bytes) as the ``compressed`` plugin writes them
    (``"mono16; png compressed "``: gray keeps its depth and names no payload)."""
    gray = {"mono8": np.uint8, "8UC1": np.uint8, "mono16": np.uint16, "16UC1": np.uint16}
    image = np.asarray(image)
    if encoding in gray and image.ndim == 2 and image.dtype == gray[encoding] and image.size:
        description = ""
    elif encoding == "bgr8" and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.size:
        description = "bgr8"
    else:
        raise BadCompressedImage("encoding", f"cannot PNG-encode array {image.dtype} {image.shape} as "
                                 f"{encoding!r}; expected mono8/8UC1, mono16/16UC1 (H x W) or bgr8 (H x W x 3)")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:
        raise BadCompressedImage("encoding", f"OpenCV could not PNG-encode a {image.shape} image")
    return f"{encoding}; png compressed {description}", encoded.tobytes()


def encode_compressed_depth(image: np.ndarray, encoding: str = "16UC1", level: int = 3) -> tuple[str, bytes]:
    """A 16-bit gray image -> (format, data) of the ``compressedDepth`` transport: the 12-byte ConfigHeader
    (format 0, no quantisation) then the PNG. Thermal raw counts travel this way on some robots."""
    if encoding not in ("16UC1", "mono16"):
        raise BadCompressedImage("encoding", f"compressedDepth here takes 16UC1 or mono16, got {encoding!r}")
    _, png = encode_png(image, encoding, level)
    return f"{encoding}; compressedDepth png", DEPTH_HEADER.pack(0, 0.0, 0.0) + png
