"""ROS transport conventions of the node over loopback: compressed inputs, fused/image/compressed, lazy processing."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from sensor_msgs.msg import CompressedImage

from sage_core.cameras import Camera
from sage_core.synthetic import SyntheticScene
from sage_ros.codec.compressed import decode_compressed, encode_compressed_depth, encode_jpeg, encode_png
from sage_ros.node import fused_outputs
from tests.ros_harness import Loopback, make_compressed, make_image

W, H = 96, 80
pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


SECOND = 1_000_000_000
SCENE = SyntheticScene(W, H, seed=11).frame(1.0)
COMPRESSED_INPUTS = {"thermal_transport": "compressed", "rgb_transport": "compressed"}


@pytest.fixture()
def loop(request):
    harness = Loopback(**getattr(request, "param", {}))
    yield harness
    harness.close()


def raw_pair(loop: Loopback, stamp: int) -> None:
    loop.send(make_image(SCENE.thermal_mono16, "mono16", stamp, "thermal"), make_image(SCENE.visible, "bgr8", stamp,
                                                                                        "rgb"))


def fused_array(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)


@pytest.mark.parametrize("thermal_codec", ["png", "compressedDepth"])
@pytest.mark.parametrize("loop", [COMPRESSED_INPUTS], indirect=True)
def test_compressed_inputs_fuse_like_raw_ones(loop, thermal_codec):
    # Lossless 16-bit thermal (PNG, or the compressedDepth transport) and JPEG rgb.
    thermal = (encode_png(SCENE.thermal_mono16, "mono16") if thermal_codec == "png"
               else encode_compressed_depth(SCENE.thermal_mono16, "16UC1"))
    rgb_format, rgb_data = encode_jpeg(SCENE.visible, "bgr8", 95)
    for i in range(3):
        stamp = (i + 1) * SECOND
        loop.thermal_compressed_pub.publish(make_compressed(thermal[1], thermal[0], stamp, "thermal"))
        loop.rgb_compressed_pub.publish(make_compressed(rgb_data, rgb_format, stamp, "rgb"))
        time.sleep(0.05)
    assert loop.wait_for(lambda: len(loop.fused) >= 2)
    out = loop.fused[-1]
    assert (out.width, out.height, out.header.frame_id) == (W, H, "rgb")
    # The same pair, raw, through the node's own pipeline: only the JPEG of the rgb image differs.
    jpeg_rgb, _ = decode_compressed(rgb_format, rgb_data)
    expected = loop.node.pipeline.fuse(SCENE.thermal_mono16, jpeg_rgb)
    assert np.abs(fused_array(out).astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("loop", [{"thermal_transport": "compressedDepth"}], indirect=True)
def test_the_compressed_depth_transport_is_its_own_topic(loop):
    depth_format, depth_data = encode_compressed_depth(SCENE.thermal_mono16, "16UC1")
    for i in range(3):
        stamp = (i + 1) * SECOND
        loop.thermal_depth_pub.publish(make_compressed(depth_data, depth_format, stamp, "thermal"))
        loop.rgb_pub.publish(make_image(SCENE.visible, "bgr8", stamp, "rgb"))
        time.sleep(0.05)
    assert loop.wait_for(lambda: len(loop.fused) >= 2)
    assert loop.node.inputs.subscriptions[Camera.THERMAL].topic_name == "/test/thermal/image/compressedDepth"
    expected = loop.node.pipeline.fuse(SCENE.thermal_mono16, SCENE.visible)
    assert np.abs(fused_array(loop.fused[-1]).astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("loop", [COMPRESSED_INPUTS], indirect=True)
def test_undecodable_compressed_messages_are_counted_and_the_node_keeps_fusing(loop):
    thermal_format, thermal_data = encode_png(SCENE.thermal_mono16, "mono16")
    rgb_format, rgb_data = encode_jpeg(SCENE.visible, "bgr8", 90)
    loop.rgb_compressed_pub.publish(make_compressed(rgb_data[: len(rgb_data) // 3], rgb_format, SECOND, "rgb"))
    loop.rgb_compressed_pub.publish(make_compressed(rgb_data, "rvl; compressedDepth", SECOND, "rgb"))
    loop.thermal_compressed_pub.publish(make_compressed(rgb_data, rgb_format, SECOND, "thermal"))  # colour thermal
    assert loop.wait_for(lambda: sum(loop.node.stats.bad.counts().values()) >= 3)
    assert loop.fused == []
    for i in range(3):
        stamp = (i + 2) * SECOND
        loop.thermal_compressed_pub.publish(make_compressed(thermal_data, thermal_format, stamp, "thermal"))
        loop.rgb_compressed_pub.publish(make_compressed(rgb_data, rgb_format, stamp, "rgb"))
        time.sleep(0.05)
    assert loop.wait_for(lambda: len(loop.fused) >= 2)
    assert sum(loop.node.stats.bad.counts().values()) == 3


@pytest.mark.parametrize("loop", [{"jpeg_quality": 85}], indirect=True)
def test_fused_jpeg_is_published_only_while_subscribed(loop, monkeypatch):
    encoded = []
    monkeypatch.setattr(fused_outputs, "encode_jpeg", lambda *args: encoded.append(args[2]) or encode_jpeg(*args))
    raw_pair(loop, SECOND)
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    assert encoded == []  # nobody asked for JPEG: none made

    jpegs: list[CompressedImage] = []
    jpeg_subscription = loop.subscribe(CompressedImage, "fused/image/compressed", jpegs.append)
    assert loop.wait_for(lambda: loop.node.outputs.compressed.get_subscription_count() > 0
                         and jpeg_subscription.get_publisher_count() > 0)  # matched on both sides
    raw_pair(loop, 2 * SECOND)
    assert loop.wait_for(lambda: len(jpegs) == 1 and len(loop.fused) == 2)
    assert encoded == [85] and jpegs[0].format == "bgr8; jpeg compressed bgr8"
    assert (jpegs[0].header.stamp.sec, jpegs[0].header.frame_id) == (2, "rgb")
    image, encoding = decode_compressed(jpegs[0].format, jpegs[0].data)
    expected = cv2.imdecode(cv2.imencode(".jpg", fused_array(loop.fused[1]), [cv2.IMWRITE_JPEG_QUALITY, 85])[1],
                            cv2.IMREAD_UNCHANGED)
    assert encoding == "bgr8" and np.array_equal(image, expected)  # the fused frame itself, at that quality


@pytest.mark.parametrize("loop", [{"diagnostics_period": 0.1}], indirect=True)
def test_nothing_is_processed_while_nobody_subscribes_and_diagnostics_say_so(loop):
    raw_pair(loop, SECOND)
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    subscription = next(s for s in loop.probe.subscriptions if s.topic_name.endswith("fused/image"))
    info = next(s for s in loop.probe.subscriptions if s.topic_name.endswith("fused/camera_info"))
    loop.probe.destroy_subscription(subscription)
    loop.probe.destroy_subscription(info)
    assert loop.wait_for(lambda: not loop.node.outputs.wanted())
    fused_before = loop.node.stats.published
    for i in range(4):
        raw_pair(loop, (i + 2) * SECOND)
        time.sleep(0.05)
    assert loop.wait_for(lambda: loop.node.stats.skipped_idle >= 8)
    assert loop.node.stats.published == fused_before and loop.node.demand.idle_since is not None
    assert loop.wait_for(lambda: loop.diagnostics and "idle" in loop.diagnostics[-1].status[0].message)
    status = loop.diagnostics[-1].status[0]
    assert status.level == b"\x00" and "nobody subscribes" in status.message
    assert loop.diagnostic_values()["idle (no subscribers)"] == "true"

    fused = []
    loop.subscribe(type(loop.fused[0]), "fused/image", fused.append)
    assert loop.wait_for(lambda: loop.node.outputs.wanted())
    raw_pair(loop, 10 * SECOND)
    assert loop.wait_for(lambda: len(fused) == 1)
    assert loop.node.demand.idle_since is None


@pytest.mark.parametrize("loop", [{"lazy": False}], indirect=True)
def test_lazy_off_processes_without_subscribers(loop):
    for subscription in list(loop.probe.subscriptions):
        if "fused" in subscription.topic_name:
            loop.probe.destroy_subscription(subscription)
    assert loop.wait_for(lambda: loop.node.outputs.image.get_subscription_count() == 0)
    published = loop.node.stats.published
    raw_pair(loop, SECOND)
    assert loop.wait_for(lambda: loop.node.stats.published == published + 1)
    assert loop.node.stats.skipped_idle == 0


def test_a_decoder_survives_an_unexpected_error_and_reports_it():
    import threading

    from sage_ros.stream.decode_queue import DecodeQueue

    handled, errors, second = [], [], threading.Event()

    def handle(msg):
        if msg == "boom":
            raise RuntimeError("unexpected")
        handled.append(msg)
        second.set()

    decoder = DecodeQueue("decode_rgb", handle, lambda: None, errors.append)
    decoder.start()
    decoder.put("boom")
    decoder.put("fine")
    assert second.wait(5)
    decoder.stop()
    assert handled == ["fine"] and [str(e) for e in errors] == ["unexpected"]


def test_one_remap_of_a_base_topic_moves_its_transport_and_camera_info():
    """image_transport naming (Kilted): the base topic is resolved, remaps included, before ``/compressed``
    and the sibling ``camera_info`` are derived from it, for the inputs and the fused outputs alike."""
    import rclpy
    from rclpy.parameter import Parameter

    from sage_ros.fusion_node import FusionNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        overrides = [Parameter("warmup", value=False), Parameter("backend", value="torch"),
                     Parameter("thermal_transport", value="compressed")]
        node = FusionNode(context=context, namespace="/front", parameter_overrides=overrides,
                          cli_args=["--ros-args", "-r", "thermal/image:=/flir/image", "-r", "fused/image:=out/fused"])
        try:
            inputs = node.inputs
            assert inputs.subscriptions[Camera.THERMAL].topic_name == "/flir/image/compressed"
            assert inputs.subscriptions[Camera.RGB].topic_name == "/front/rgb/image"
            assert [s.topic_name for s in inputs._info_subscriptions] == ["/flir/camera_info", "/front/rgb/camera_info"]
            assert node.outputs.topic_names == ["/front/out/fused", "/front/out/fused/compressed",
                                                "/front/out/camera_info"]
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_diagnostics_status_name_carries_the_namespace(loop):
    assert loop.wait_for(lambda: bool(loop.diagnostics))
    names = [status.name for status in loop.diagnostics[-1].status]
    assert names == ["test/sage_fusion: fusion"]  # unique per node: two namespaced instances never collide
