"""Offline bag fusion: bags written here from generated pairs, fused, and read back."""

from __future__ import annotations

import numpy as np
import pytest

from sage_core.alignment import Aligner, transform_intrinsics
from sage_core.fuser import Fuser
from sage_core.options import InferenceOptions
from sage_ros.bags.fuse_bag import FUSED_INFO_TOPIC, FUSED_TOPIC, fuse_bag
from sage_ros.bags.messages import CAMERA_INFO, TYPESTORE, camera_info_message
from sage_ros.bags.recording import PairStreams, write_pair_bag
from sage_ros.bags.storage import OutputBag
from sage_ros.parameters import FusionParams
from tests.bag_helpers import expected_fused, fusion, jpeg_roundtrip, on, read_bag, synthetic_pairs


@pytest.fixture(scope="module")
def fuser():
    return Fuser.from_options(InferenceOptions(device="cpu", backend="torch"))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_raw_bag_gives_what_the_pipeline_gives_with_the_reference_header(tmp_path, fuser, storage):
    pairs = synthetic_pairs(6)
    streams = PairStreams()
    write_pair_bag(tmp_path / "in", pairs, streams, storage=storage)
    params = FusionParams()
    result = fuse_bag(tmp_path / "in", tmp_path / "out", params, fusion=fusion(fuser, params))
    assert (result.published, result.pairs, result.unpaired, sum(result.bad.values())) == (6, 6, 0, 0)
    messages = read_bag(tmp_path / "out")
    fused, rgb = on(messages, FUSED_TOPIC), on(messages, "/rgb/image")
    assert len(fused) == 6 and len(on(messages, "/thermal/image")) == 6 and len(rgb) == 6
    for message, reference, expected in zip(fused, rgb, expected_fused(fuser, params, pairs)):
        assert message.msg.encoding == "bgr8" and message.msg.header.frame_id == "rgb_optical"
        assert message.stamp_ns == reference.stamp_ns and message.log_ns == reference.log_ns
        assert np.array_equal(message.image(), expected)


def test_input_topics_are_copied_byte_for_byte(tmp_path, fuser):
    write_pair_bag(tmp_path / "in", synthetic_pairs(4), storage="sqlite3")
    fuse_bag(tmp_path / "in", tmp_path / "out", FusionParams(), fusion=fusion(fuser))
    before = read_bag(tmp_path / "in")
    after = [m for m in read_bag(tmp_path / "out") if m.topic != FUSED_TOPIC]
    key = lambda m: (m.topic, m.log_ns)  # noqa: E731
    assert sorted(((m.topic, m.log_ns, m.raw) for m in before), key=lambda t: t[:2]) == \
        sorted(((m.topic, m.log_ns, m.raw) for m in after), key=lambda t: t[:2])
    assert len({key(m) for m in after}) == 8


def test_no_copy_writes_the_fused_stream_alone(tmp_path, fuser):
    write_pair_bag(tmp_path / "in", synthetic_pairs(3))
    result = fuse_bag(tmp_path / "in", tmp_path / "out.mcap", FusionParams(), copy=False, fusion=fusion(fuser))
    assert (tmp_path / "out.mcap").is_file() and result.copied == 0
    assert {m.topic for m in read_bag(tmp_path / "out.mcap")} == {FUSED_TOPIC}


def test_jpeg_rgb_and_png_thermal_decode_as_the_compressed_transport_sends_them(tmp_path, fuser):
    pairs = synthetic_pairs(4)
    write_pair_bag(tmp_path / "in", pairs, PairStreams(rgb_transport="jpeg", thermal_transport="png"),
                   jpeg_quality=90)
    result = fuse_bag(tmp_path / "in", tmp_path / "out", FusionParams(), fusion=fusion(fuser))
    assert result.topics[result_camera("thermal")].name == "/thermal/image/compressed"
    decoded_pairs = [(thermal, enc, jpeg_roundtrip(visible, 90)) for thermal, enc, visible in pairs]
    fused = on(read_bag(tmp_path / "out"), FUSED_TOPIC)
    assert len(fused) == 4
    for message, expected in zip(fused, expected_fused(fuser, FusionParams(), decoded_pairs)):
        assert np.array_equal(message.image(), expected)


def result_camera(label: str):
    from sage_core.cameras import Camera

    return Camera.THERMAL if label == "thermal" else Camera.RGB


def test_compressed_depth_thermal_keeps_its_sixteen_bits(tmp_path, fuser):
    pairs = synthetic_pairs(3)
    write_pair_bag(tmp_path / "in", pairs, PairStreams(thermal_transport="compressedDepth"))
    fused = on(read_bag(fuse_bag(tmp_path / "in", tmp_path / "out", FusionParams(), fusion=fusion(fuser)).output),
               FUSED_TOPIC)
    for message, expected in zip(fused, expected_fused(fuser, FusionParams(), pairs), strict=True):
        assert np.array_equal(message.image(), expected)


def test_the_thermal_camera_as_reference_gives_its_grid_stamp_and_frame(tmp_path, fuser):
    pairs = synthetic_pairs(3, width=96, height=80)
    pairs = [(thermal[:64, :80].copy(), enc, visible) for thermal, enc, visible in pairs]  # a smaller thermal grid
    write_pair_bag(tmp_path / "in", pairs)
    params = FusionParams(reference_camera="thermal", output_encoding="mono8")
    fuse_bag(tmp_path / "in", tmp_path / "out", params, fusion=fusion(fuser, params))
    messages = read_bag(tmp_path / "out")
    for message, thermal in zip(on(messages, FUSED_TOPIC), on(messages, "/thermal/image"), strict=True):
        assert message.msg.encoding == "mono8" and message.image().shape == (64, 80)
        assert message.msg.header.frame_id == "thermal_optical" and message.stamp_ns == thermal.stamp_ns
        assert message.log_ns == thermal.log_ns


def test_bad_messages_are_counted_and_the_rest_is_fused(tmp_path, fuser):
    from sage_ros.bags.messages import COMPRESSED, IMAGE, compressed_message, image_message
    from sage_ros.bags.recording import BagRecorder
    from sage_ros.bags.storage import OutputBag

    pairs = synthetic_pairs(4)
    start = 1_700_000_000_000_000_000
    with OutputBag(tmp_path / "in") as bag:
        recorder = BagRecorder(bag)
        junk = recorder.connection("/rgb/image/compressed", COMPRESSED)
        for i, (thermal, enc, visible) in enumerate(pairs):
            stamp = start + i * 100_000_000
            recorder.image("/thermal/image", thermal, enc, stamp, "thermal_optical", stamp + 1)
            if i == 1:  # a corrupt JPEG where the second RGB image should be
                bag.write(junk, stamp + 2, compressed_message("bgr8; jpeg compressed bgr8", b"\xff\xd8junk", stamp,
                                                              "rgb_optical"))
            else:
                recorder.image("/rgb/image", visible, "bgr8", stamp, "rgb_optical", stamp + 2, "jpeg")
        stamp = start + 9 * 100_000_000  # a thermal image in an encoding thermal cameras never send
        bag.write(recorder.connection("/thermal/image", IMAGE), stamp,
                  image_message(np.zeros((80, 96, 3), np.uint8), "bgr8", stamp, "thermal_optical"))
    result = fuse_bag(tmp_path / "in", tmp_path / "out", FusionParams(), fusion=fusion(fuser))
    assert result.bad == {"compressed_data": 1, "encoding": 1}
    assert "rgb: " in result.first_bad["compressed_data"] and "cannot be decoded" in result.first_bad["compressed_data"]
    assert result.published == 3 and result.unpaired == 1


def test_passthrough_publishes_the_live_camera_when_the_other_stops(tmp_path, fuser):
    from sage_ros.bags.recording import BagRecorder
    from sage_ros.bags.storage import OutputBag

    pairs = synthetic_pairs(8)
    start = 1_700_000_000_000_000_000
    with OutputBag(tmp_path / "in") as bag:
        recorder = BagRecorder(bag)
        for i, (thermal, enc, visible) in enumerate(pairs):
            stamp = start + i * 500_000_000  # 2 Hz: thermal stops after 3 frames, stale after 1 s
            recorder.image("/rgb/image", visible, "bgr8", stamp, "rgb_optical", stamp)
            if i < 3:
                recorder.image("/thermal/image", thermal, enc, stamp, "thermal_optical", stamp + 1)
    params = FusionParams(on_stale="passthrough")
    result = fuse_bag(tmp_path / "in", tmp_path / "out", params, fusion=fusion(fuser, params))
    fused = on(read_bag(tmp_path / "out"), FUSED_TOPIC)
    assert result.pairs == 3 and result.passthrough == 3  # rgb 5, 6, 7: more than 1 s after the last thermal
    assert [m.stamp_ns for m in fused[3:]] == [start + i * 500_000_000 for i in (5, 6, 7)]
    assert np.array_equal(fused[-1].image(), pairs[-1][2])  # the rgb image itself, on the output grid


@pytest.mark.parametrize("rectify", [True, False])
def test_fused_camera_info_follows_the_reference_cameras_cropped_and_scaled_like_the_image(tmp_path, fuser, rectify):
    pairs = synthetic_pairs(3)
    write_pair_bag(tmp_path / "in", pairs)
    k = [100.0, 0.0, 48.0, 0.0, 100.0, 40.0, 0.0, 0.0, 1.0]
    p = [100.0, 0.0, 48.0, 0.0, 0.0, 100.0, 40.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    info = {"height": 80, "width": 96, "distortion_model": "plumb_bob", "d": [0.1, 0.0, 0.0, 0.0, 0.0],
            "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], "k": k, "p": p, "binning_x": 0, "binning_y": 0}
    with OutputBag(tmp_path / "with_info", overwrite=True) as out:  # the same bag plus /rgb/camera_info
        connections = {}
        for message in read_bag(tmp_path / "in"):
            if message.topic not in connections:
                connections[message.topic] = out.add_topic(message.topic, message.msgtype)
            out.write(connections[message.topic], message.log_ns, message.raw)
            if message.topic == "/rgb/image" and "/rgb/camera_info" not in connections:
                connections["/rgb/camera_info"] = out.add_topic("/rgb/camera_info", CAMERA_INFO)
                out.write(connections["/rgb/camera_info"], message.log_ns - 1,
                          camera_info_message(info, message.stamp_ns, "rgb_optical"))
    params = FusionParams(output_width=48, output_height=40, rectify=rectify)
    result = fuse_bag(tmp_path / "with_info", tmp_path / "out", params, fusion=fusion(fuser, params))
    infos, images = on(read_bag(tmp_path / "out"), FUSED_INFO_TOPIC), on(read_bag(tmp_path / "out"), FUSED_TOPIC)
    assert result.camera_infos == len(infos) == len(images) == 3
    plan = Aligner(params.alignment_config()).plan((96, 80), (96, 80))
    expected_k, expected_p = transform_intrinsics(k, p, plan)
    for message, image in zip(infos, images):
        msg = TYPESTORE.deserialize_cdr(message.raw, CAMERA_INFO)
        assert (msg.width, msg.height, msg.header.frame_id) == (48, 40, "rgb_optical")
        assert message.stamp_ns == image.stamp_ns and message.log_ns == image.log_ns
        assert np.allclose(msg.k, expected_k) and np.allclose(msg.p, expected_p) and msg.k[0] == 50.0
        # rectified (P set: K' = P's left 3x3, here K): the fused image is undistorted, and says so
        assert list(msg.d) == ([0.0] * 5 if rectify else info["d"]) and msg.distortion_model == "plumb_bob"


def test_the_write_queue_keeps_the_order_and_hands_a_write_error_back():
    import threading

    from sage_ros.bags.storage import WriteQueue

    written = []
    queue = WriteQueue(lambda *message: written.append(message), threading.Lock(), depth=2)
    for index in range(50):
        queue.put("topic", index, b"x")
    queue.close()
    assert [log_ns for _, log_ns, _ in written] == list(range(50))

    def disk_full(topic, log_ns, raw):
        if log_ns == 3:
            raise OSError(28, "No space left on device")

    failing = WriteQueue(disk_full, threading.Lock(), depth=2)
    with pytest.raises(OSError, match="No space left"):
        for index in range(100):  # the error surfaces at a later put (or at close)
            failing.put("topic", index, b"x")
        failing.close()


def test_a_distorted_thermal_camera_is_rectified_by_its_camera_info_in_the_bag(tmp_path, fuser):
    from sage_core.lens import LensModel
    from sage_core.rectification import Rectifier

    pairs = synthetic_pairs(3)
    write_pair_bag(tmp_path / "in", pairs)
    info = {"height": 80, "width": 96, "distortion_model": "equidistant", "d": [0.2, -0.05, 0.0, 0.0],
            "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], "k": [60.0, 0.0, 47.5, 0.0, 60.0, 39.5, 0.0, 0.0, 1.0],
            "p": [0.0] * 12, "binning_x": 0, "binning_y": 0}
    with OutputBag(tmp_path / "with_info", overwrite=True) as out:  # the same bag plus /thermal/camera_info first
        connections = {"/thermal/camera_info": out.add_topic("/thermal/camera_info", CAMERA_INFO)}
        messages = read_bag(tmp_path / "in")
        out.write(connections["/thermal/camera_info"], messages[0].log_ns - 1,
                  camera_info_message(info, messages[0].stamp_ns, "thermal_optical"))
        for message in messages:
            if message.topic not in connections:
                connections[message.topic] = out.add_topic(message.topic, message.msgtype)
            out.write(connections[message.topic], message.log_ns, message.raw)
    params = FusionParams()
    fuse_bag(tmp_path / "with_info", tmp_path / "out", params, fusion=fusion(fuser, params))
    fused = on(read_bag(tmp_path / "out"), FUSED_TOPIC)
    rectify = Rectifier(LensModel(96, 80, "equidistant", tuple(info["d"]), tuple(info["k"]), tuple(info["r"]),
                                  tuple(info["p"])))
    expected = expected_fused(fuser, params, [(rectify(t), kind, v) for t, kind, v in pairs])
    assert len(fused) == 3 and all(np.array_equal(m.image(), e) for m, e in zip(fused, expected))
