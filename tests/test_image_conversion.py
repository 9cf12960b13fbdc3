"""sensor_msgs/Image <-> numpy without ROS (messages are plain namespaces here)."""

from types import SimpleNamespace

import numpy as np
import pytest

from sage_ros.codec.encodings import BadImage, to_bgr
from sage_ros.codec.image import array_to_image_fields, image_to_array


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


# ----- property-based fuzzing -----------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sage_ros.codec.encodings import ENCODINGS  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(encoding=st.one_of(st.sampled_from(sorted(ENCODINGS)), st.text(max_size=8)),
       height=st.integers(min_value=0, max_value=9), width=st.integers(min_value=0, max_value=9),
       pad=st.integers(min_value=-3, max_value=5), big_endian=st.booleans(), extra=st.integers(-2, 2),
       seed=st.integers(0, 2**16))
def test_any_message_converts_or_raises_bad_image(encoding, height, width, pad, big_endian, extra, seed):
    """Whatever the fields (unknown encodings, zero sizes, short steps, wrong lengths, NaNs), conversion returns
    an owned array of the declared shape or raises BadImage with a kind; it never raises anything else."""
    spec = ENCODINGS.get(encoding)
    pixel = spec.channels * spec.dtype.itemsize if spec else 1
    step = max(0, width * pixel + pad)
    data = np.random.default_rng(seed).integers(0, 256, max(0, step * height + extra), dtype=np.uint8).tobytes()
    message = msg(encoding=encoding, height=height, width=width, step=step, is_bigendian=int(big_endian), data=data)
    try:
        array = image_to_array(message)
    except BadImage as exc:
        assert exc.kind in ("encoding", "zero_size", "data_length", "non_finite") and str(exc)
        return
    assert array.shape[:2] == (height, width)
    assert not np.shares_memory(array, np.frombuffer(data, np.uint8))  # a copy: message buffers are reused
    assert array.dtype == spec.dtype and array.dtype.isnative
    if spec.dtype.kind == "f":
        assert np.isfinite(array).all()


@settings(max_examples=100, deadline=None)
@given(encoding=st.sampled_from(sorted(ENCODINGS)), height=st.integers(1, 7), width=st.integers(1, 7),
       pad=st.integers(0, 4), big_endian=st.booleans(), seed=st.integers(0, 2**16))
def test_valid_messages_round_trip_with_padding_and_either_byte_order(encoding, height, width, pad, big_endian,
                                                                      seed):
    spec = ENCODINGS[encoding]
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    rng = np.random.default_rng(seed)
    if spec.dtype.kind == "f":
        array = rng.normal(size=shape).astype(spec.dtype)
    else:
        array = rng.integers(0, np.iinfo(spec.dtype).max + 1, shape, dtype=spec.dtype)
    stored = array.astype(spec.dtype.newbyteorder(">" if big_endian else "<"))
    row = stored.reshape(height, -1).view(np.uint8)
    padded = np.concatenate([row, np.zeros((height, pad), np.uint8)], axis=1)
    message = msg(encoding=encoding, height=height, width=width, step=padded.shape[1], is_bigendian=int(big_endian),
                  data=padded.tobytes())
    assert np.array_equal(image_to_array(message), array)


@pytest.mark.parametrize("frame_id", ["", "a", "abc", "abcd", "rgb_optical_frame", "caméra"])  # every alignment
def test_serialized_images_read_and_write_as_rclpy_does(frame_id):
    serialization = pytest.importorskip("rclpy.serialization")
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from sage_ros.codec.cdr import image_from_cdr, image_to_cdr
    from sage_ros.codec.header import stamp_ns

    rng = np.random.default_rng(4)
    header = Header(stamp=Time(sec=1_795_778_105, nanosec=865_724_257), frame_id=frame_id)
    for encoding, array in (("bgr8", rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)),
                            ("mono16", rng.integers(0, 65536, (2, 3), dtype=np.uint16)),
                            ("mono8", rng.integers(0, 256, (1, 1), dtype=np.uint8))):
        message = Image(header=header, **array_to_image_fields(array, encoding))
        ours = image_to_cdr(header, array, encoding)
        assert len(ours) == len(serialization.serialize_message(message))  # padding bytes may differ
        assert serialization.deserialize_message(ours, Image) == message
        read = image_from_cdr(serialization.serialize_message(message))
        assert stamp_ns(read.header) == stamp_ns(header) and read.header.frame_id == header.frame_id
        assert (read.height, read.width, read.encoding) == (message.height, message.width, encoding)
        assert np.array_equal(image_to_array(read), array)


def test_truncated_serialized_image_is_a_bad_image_when_converted():
    pytest.importorskip("rclpy")
    from std_msgs.msg import Header

    from sage_ros.codec.cdr import image_from_cdr, image_to_cdr

    whole = image_to_cdr(Header(frame_id="rgb"), np.zeros((4, 6, 3), np.uint8), "bgr8")
    assert image_from_cdr(whole).width == 6
    for payload in (b"", b"\x00\x01\x00\x00\x01\x00", b"\x07\x07\x00\x00" + bytes(40), whole[:-5]):
        read = image_from_cdr(payload)  # a subscription callback must not raise: the error travels with it
        with pytest.raises(BadImage) as raised:
            image_to_array(read)
        assert raised.value.kind == "data_length"
