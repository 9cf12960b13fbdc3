"""sensor_msgs/Image <-> numpy without ROS (messages are plain namespaces here)."""

from types import SimpleNamespace

import numpy as np
import pytest

from sage_ros.image_conversion import BadImage, array_to_image_fields, image_to_array, to_bgr


def msg(**fields):
    return SimpleNamespace(**fields)


def test_round_trip_every_encoding():
    rng = np.random.default_rng(0)
    cases = {"mono8": rng.integers(0, 256, (5, 7), dtype=np.uint8),
             "8UC1": rng.integers(0, 256, (5, 7), dtype=np.uint8),
             "mono16": rng.integers(0, 65536, (5, 7), dtype=np.uint16),
             "16UC1": rng.integers(0, 65536, (5, 7), dtype=np.uint16),
             "32FC1": rng.normal(size=(5, 7)).astype(np.float32),
             "rgb8": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
             "bgra8": rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)}
    for encoding, array in cases.items():
        back = image_to_array(msg(**array_to_image_fields(array, encoding)))
        assert back.dtype == array.dtype and np.array_equal(back, array), encoding


def test_row_padding_is_skipped():
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    rows = [row.tobytes() + b"\xff" * 6 for row in array]  # step 14 = 8 data + 6 padding
    out = image_to_array(msg(height=3, width=4, encoding="mono16", is_bigendian=0, step=14, data=b"".join(rows)))
    assert np.array_equal(out, array)


def test_big_endian_16_bit():
    array = np.array([[1, 256, 65535]], dtype=np.uint16)
    data = array.astype(">u2").tobytes()
    out = image_to_array(msg(height=1, width=3, encoding="16UC1", is_bigendian=1, step=6, data=data))
    assert out.dtype == np.uint16 and out.tolist() == [[1, 256, 65535]]


def test_channel_orders_to_bgr():
    bgr = np.array([[[10, 20, 30]]], np.uint8)
    assert to_bgr(bgr[..., ::-1], "rgb8").tolist() == bgr.tolist()
    assert to_bgr(np.dstack([bgr[..., ::-1], [[[255]]]]), "rgba8").tolist() == bgr.tolist()
    assert to_bgr(np.dstack([bgr, [[[255]]]]), "bgra8").tolist() == bgr.tolist()


@pytest.mark.parametrize(
    "fields, kind",
    [
        (dict(height=2, width=2, encoding="yuv422", is_bigendian=0, step=4, data=bytes(8)), "encoding"),
        (dict(height=0, width=0, encoding="mono8", is_bigendian=0, step=0, data=b""), "zero_size"),
        (dict(height=2, width=2, encoding="mono8", is_bigendian=0, step=2, data=bytes(3)), "data_length"),
        (dict(height=2, width=4, encoding="mono16", is_bigendian=0, step=4, data=bytes(8)), "data_length"),
        (dict(height=1, width=1, encoding="32FC1", is_bigendian=0, step=4,
              data=np.array([np.inf], np.float32).tobytes()), "non_finite"),
    ],
)
def test_bad_messages_have_a_kind(fields, kind):
    with pytest.raises(BadImage) as info:
        image_to_array(msg(**fields))
    assert info.value.kind == kind


def test_encoding_not_allowed_for_the_stream():
    fields = array_to_image_fields(np.zeros((2, 2, 3), np.uint8), "bgr8")
    with pytest.raises(BadImage, match="expected one of mono8"):
        image_to_array(msg(**fields), allowed=("mono8", "mono16"))
