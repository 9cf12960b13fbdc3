"""The node's second stream (detection/image, for machines): one pairing and alignment, each stream only on demand."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from sensor_msgs.msg import CameraInfo, Image

from sage_core.synthetic import SyntheticScene
from sage_ros.topic_names import DETECTION_IMAGE
from tests.ros_harness import Loopback, make_image

pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test

W, H = 80, 64
SECOND = 1_000_000_000
SCENE = SyntheticScene(W, H, seed=5).frame(1.0)


def _pair(loop: Loopback, seconds: int) -> None:
    loop.send(make_image(SCENE.thermal_mono8, "mono8", seconds * SECOND, "thermal_optical"),
              make_image(np.ascontiguousarray(SCENE.visible), "bgr8", seconds * SECOND, "rgb_optical"))


def _pixels(message: Image) -> np.ndarray:
    return np.frombuffer(bytes(message.data), np.uint8).reshape(message.height, message.width, -1)


def test_detection_image_comes_from_the_same_pair_only_while_somebody_subscribes():
    loop = Loopback()
    try:
        machines = loop.node.pipeline.machines
        calls = []
        fuse = machines.fuse
        machines.fuse = lambda *a, **k: calls.append(1) or fuse(*a, **k)
        _pair(loop, 1)
        assert loop.wait_for(lambda: len(loop.fused) == 1)
        assert calls == []  # nobody subscribes to detection/image: the second model did not run
        received: list[Image] = []
        infos: list[CameraInfo] = []
        loop.subscribe(Image, DETECTION_IMAGE, received.append)
        loop.subscribe(CameraInfo, "detection/camera_info", infos.append)
        assert loop.wait_for(loop.node.machine_outputs.wanted)
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=[100.0, 0, 39.5, 0, 100.0, 31.5, 0, 0, 1], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                          p=[100.0, 0, 39.5, 0, 0, 100.0, 31.5, 0, 0, 0, 1, 0])
        info.header.frame_id = "rgb_optical"
        loop.rgb_info_pub.publish(info)  # a lens: both streams then carry their camera_info
        assert loop.wait_for(lambda: loop.node.lenses.output_lens(loop.node.pipeline.reference) is not None)
        _pair(loop, 2)
        assert loop.wait_for(lambda: len(received) == 1 and len(loop.fused) == 2 and len(infos) == 1)
        people, machine = loop.fused[-1], received[0]
        assert calls == [1]
        assert (machine.header.stamp.sec, machine.header.frame_id) == (2, "rgb_optical") == (
            people.header.stamp.sec, people.header.frame_id)
        assert (machine.width, machine.height, machine.encoding) == (W, H, "bgr8")
        assert infos[0].width == W and infos[0].header.stamp.sec == 2 and infos[0].k[0] == 100.0
        # two models, two pictures of one aligned pair
        assert float(np.abs(_pixels(machine).astype(int) - _pixels(people).astype(int)).mean()) > 1.0
        names = [topic for group in loop.node.health.outputs for topic in group.topic_names]
        assert "/test/detection/image" in names and "/test/fused/image" in names
    finally:
        loop.close()


def test_detection_stream_off_loads_no_second_model_and_offers_no_topic():
    loop = Loopback(detection_stream=False)
    try:
        assert loop.node.pipeline.machines is None and loop.node.machine_outputs is None
        assert loop.probe.count_publishers(f"/test/{DETECTION_IMAGE}") == 0
        _pair(loop, 1)
        assert loop.wait_for(lambda: len(loop.fused) == 1)
    finally:
        loop.close()


def test_model_detection_puts_the_detection_model_on_fused_image():
    loop = Loopback(model="detection", detection_stream=False)
    try:
        assert loop.node.fuser.name == "affine_chroma_fuse"
        _pair(loop, 1)
        assert loop.wait_for(lambda: len(loop.fused) == 1)
    finally:
        loop.close()


def test_a_detection_model_that_cannot_load_costs_its_stream_only(monkeypatch):
    from sage_core.errors import BackendError
    from sage_ros import fusion_node

    def refuse(params, workers):
        raise BackendError("backend onnxruntime is not available: onnxruntime is not installed")

    monkeypatch.setattr(fusion_node, "machines_fuser", refuse)
    loop = Loopback()
    try:
        assert loop.node.pipeline.machines is None and loop.node.machine_outputs is None
        assert loop.probe.count_publishers(f"/test/{DETECTION_IMAGE}") == 0  # offered no more
        _pair(loop, 1)
        assert loop.wait_for(lambda: len(loop.fused) == 1)  # the people's stream goes on
    finally:
        loop.close()
