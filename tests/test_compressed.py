"""sage_ros.codec.compressed: the CompressedImage codec, against the format strings image_transport writes."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sage_core.errors import FusionInputError
from sage_ros.codec.compressed import (
    DEPTH_HEADER,
    BadCompressedImage,
    decode_compressed,
    encode_compressed_depth,
    encode_jpeg,
    encode_png,
    parse_format,
)
from sage_ros.codec.encodings import BadImage, to_bgr
from tests.helpers import random_bgr


def smooth_bgr(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth colour picture: JPEG keeps it within a few levels, so colour order errors show."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 200)], axis=2).astype(np.uint8)


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8"])
def test_jpeg_round_trip_keeps_colours_whatever_the_source_order(encoding):
    bgr = smooth_bgr()
    source = bgr if encoding == "bgr8" else bgr[..., ::-1]
    fmt, data = encode_jpeg(source, encoding, quality=95)
    assert fmt == f"{encoding}; jpeg compressed bgr8"
    image, decoded_encoding = decode_compressed(fmt, data)
    assert decoded_encoding == "bgr8" and image.shape == bgr.shape
    assert np.abs(to_bgr(image, decoded_encoding).astype(int) - bgr).max() <= 8


def test_mono8_jpeg_round_trip():
    gray = smooth_bgr()[..., 0]
    fmt, data = encode_jpeg(gray, "mono8", 95)
    assert fmt == "mono8; jpeg compressed mono8"
    image, encoding = decode_compressed(fmt, bytearray(data))
    assert encoding == "mono8" and image.shape == gray.shape and np.abs(image.astype(int) - gray).max() <= 6


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", "rgb8; png compressed bgr8", "jpeg"])
def test_payloads_tagged_bgr_or_old_style_come_back_as_bgr8(fmt):
    bgr = random_bgr()
    data = png(bgr) if "png" in fmt else cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1]
    image, encoding = decode_compressed(fmt, data)
    assert encoding == "bgr8"
    if "png" in fmt:
        assert np.array_equal(image, bgr)


def test_an_untagged_colour_payload_is_rgb_as_image_transport_reads_it():
    rgb = random_bgr()  # a publisher that handed RGB bytes to the encoder as they were
    image, encoding = decode_compressed("rgb8; png compressed ", png(rgb))
    assert encoding == "rgb8" and np.array_equal(image, rgb)


@pytest.mark.parametrize("fmt,expected", [("mono16; png compressed ", "mono16"), ("16UC1; png compressed", "16UC1"),
                                          ("mono16; png compressed mono16", "mono16"), ("png", "mono16")])
def test_sixteen_bit_png_stays_sixteen_bit(fmt, expected):
    counts = np.random.default_rng(1).integers(6000, 9000, (40, 50)).astype(np.uint16)
    image, encoding = decode_compressed(fmt, png(counts))
    assert encoding == expected and image.dtype == np.uint16 and np.array_equal(image, counts)


def test_encode_png_writes_the_plugin_format_and_round_trips():
    counts = np.random.default_rng(2).integers(0, 65535, (30, 20)).astype(np.uint16)
    fmt, data = encode_png(counts, "mono16")
    assert fmt == "mono16; png compressed "
    image, encoding = decode_compressed(fmt, data, allowed=("mono16",))
    assert encoding == "mono16" and np.array_equal(image, counts)


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth png", "16UC1; compressedDepth", "mono16; compressedDepth png"])
def test_compressed_depth_skips_its_config_header(fmt):
    counts = np.random.default_rng(3).integers(1, 65535, (24, 32)).astype(np.uint16)
    data = DEPTH_HEADER.pack(0, 0.0, 0.0) + png(counts)
    image, encoding = decode_compressed(fmt, np.frombuffer(data, np.uint8))
    assert encoding == fmt.split(";")[0] and np.array_equal(image, counts)


def test_encode_compressed_depth_round_trips():
    counts = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300
    fmt, data = encode_compressed_depth(counts)
    assert fmt == "16UC1; compressedDepth png" and len(data) > DEPTH_HEADER.size
    assert data[DEPTH_HEADER.size:DEPTH_HEADER.size + 4] == b"\x89PNG"
    assert np.array_equal(decode_compressed(fmt, data)[0], counts)


def test_compressed_depth_32fc1_inverts_the_quantisation_and_marks_missing_values():
    depth_z0, depth_max = 100.0, 10.0  # the plugin's defaults
    quant_a = depth_z0 * (depth_z0 + 1.0)
    quant_b = 1.0 - quant_a / depth_max
    depth = np.array([[1.0, 2.5], [5.0, 20.0]], np.float32)  # 20 m is beyond depth_max: sent as 0
    inverse = np.where(depth < depth_max, quant_a / depth + quant_b, 0).astype(np.uint16)
    data = DEPTH_HEADER.pack(0, quant_a, quant_b) + png(inverse)
    image, encoding = decode_compressed("32FC1; compressedDepth png", data)
    assert encoding == "32FC1" and np.isnan(image[1, 1])
    assert np.allclose(image[~np.isnan(image)], [1.0, 2.5, 5.0], rtol=0.02)
    with pytest.raises(BadImage) as caught:
        decode_compressed("32FC1; compressedDepth png", data, allowed=("32FC1",))
    assert caught.value.kind == "non_finite"


def test_a_gray_camera_sending_a_colour_jpeg_comes_back_gray():
    bgr = cv2.cvtColor(smooth_bgr()[..., 0], cv2.COLOR_GRAY2BGR)
    data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1]
    image, encoding = decode_compressed("mono8; jpeg compressed bgr8", data)
    assert encoding == "mono8" and image.ndim == 2


@pytest.mark.parametrize("fmt,data,kind,words", [
    ("gif", b"GIF89a", "compressed_format", "unknown compressed format 'gif'"),
    ("rgb8; webp compressed bgr8", b"x", "compressed_format", "unknown compressed format"),
    ("16UC1; compressedDepth rvl", b"x" * 40, "compressed_format", "codec 'rvl'"),
    ("jpeg", b"", "compressed_data", "no data (0 bytes)"),
    ("jpeg", b"\xff\xd8\xff\xe0 not really a jpeg", "compressed_data", "cannot be decoded"),
    ("16UC1; compressedDepth png", b"\x00" * 12, "compressed_data", "no room"),
])
def test_bad_messages_raise_one_documented_error_with_a_kind(fmt, data, kind, words):
    with pytest.raises(BadCompressedImage) as caught:
        decode_compressed(fmt, data)
    assert caught.value.kind == kind and words in str(caught.value)
    assert isinstance(caught.value, FusionInputError) and isinstance(caught.value, BadImage)


def test_a_truncated_jpeg_is_refused():
    _, data = encode_jpeg(random_bgr(64, 64), "bgr8", 90)
    with pytest.raises(BadCompressedImage, match="cannot be decoded"):
        decode_compressed("bgr8; jpeg compressed bgr8", data[: len(data) // 3])


def test_allowed_encodings_are_checked():
    fmt, data = encode_jpeg(random_bgr(), "bgr8", 80)
    with pytest.raises(BadCompressedImage, match="decodes to bgr8; expected one of mono8, mono16") as caught:
        decode_compressed(fmt, data, allowed=("mono8", "mono16"))
    assert caught.value.kind == "encoding"


def test_data_types_of_rclpy_and_rosbags_are_taken():
    fmt, data = encode_jpeg(smooth_bgr()[..., 0], "mono8", 90)
    for form in (data, bytearray(data), memoryview(data), array.array("B", data), np.frombuffer(data, np.uint8),
                 list(data)):
        assert decode_compressed(fmt, form)[0].shape == (48, 64)


@pytest.mark.parametrize("image,encoding,quality,words", [
    (np.zeros((4, 4), np.uint16), "mono16", 90, "cannot JPEG-encode 'mono16'"),
    (np.zeros((4, 4), np.uint8), "bgr8", 90, "does not fit bgr8"),
    (np.zeros((4, 4, 3), np.uint8), "bgr8", 0, "quality must be an integer in [1, 100]"),
    (np.zeros((0, 4, 3), np.uint8), "bgr8", 90, "non-empty"),
])
def test_encode_jpeg_refuses_what_it_cannot_write(image, encoding, quality, words):
    with pytest.raises(BadCompressedImage) as caught:
        encode_jpeg(image, encoding, quality)
    assert words in str(caught.value)


def test_parse_format_names_transport_and_codec():
    assert parse_format("bgr8; jpeg compressed bgr8") == ("bgr8", "compressed", "jpeg")
    assert parse_format("JPG") == ("", "compressed", "jpeg")
    assert parse_format("32FC1; tiff compressed ") == ("32FC1", "compressed", "tiff")
    assert parse_format("16UC1; compressedDepth") == ("16UC1", "compressedDepth", "png")


FORMATS = st.one_of(st.text(max_size=40), st.sampled_from([
    "jpeg", "png", "tiff", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8", "mono8; jpeg compressed mono8",
    "mono16; png compressed ", "16UC1; compressedDepth png", "32FC1; compressedDepth png", "16UC1; compressedDepth"]))
PREFIXES = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", DEPTH_HEADER.pack(0, 1.0, 2.0)])


@settings(max_examples=300, deadline=None)
@given(fmt=FORMATS, prefix=PREFIXES, body=st.binary(max_size=300))
def test_random_input_raises_nothing_but_the_documented_error(fmt, prefix, body):
    try:
        image, encoding = decode_compressed(fmt, prefix + body)
    except BadCompressedImage as exc:
        assert exc.kind in ("compressed_format", "compressed_data", "encoding", "non_finite") and str(exc)
    else:
        assert isinstance(image, np.ndarray) and image.size > 0 and isinstance(encoding, str)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**16), fmt=FORMATS, cut=st.integers(0, 400))
def test_damaged_real_images_raise_nothing_but_the_documented_error(seed, fmt, cut):
    """Real JPEG/PNG with the tail cut or a few bytes flipped: decoded or refused, never anything else."""
    rng = np.random.default_rng(seed)
    data = bytearray(png(random_bgr(16, 16, seed)) if seed % 2 else encode_jpeg(random_bgr(16, 16, seed), "bgr8")[1])
    for position in rng.integers(0, len(data), 3):
        data[position] ^= int(rng.integers(1, 256))
    try:
        decode_compressed(fmt, bytes(data[: max(1, len(data) - cut)]))
    except BadCompressedImage as exc:
        assert str(exc)
