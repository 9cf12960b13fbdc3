"""The node rectifies each camera by its camera_info before alignment, and fused/camera_info says so."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from sensor_msgs.msg import CameraInfo

from sage_core.lens import LensModel, distort_image
from sage_core.rectification import Rectifier
from sage_core.synthetic import SyntheticScene
from tests.ros_harness import Loopback, make_image

W, H = 96, 80
pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


SECOND = 1_000_000_000
SCENE = SyntheticScene(W, H, seed=7).frame(1.0)


def camera_info(d: list[float], model: str = "plumb_bob", frame_id: str = "") -> CameraInfo:
    f, cx, cy = 70.0, (W - 1) / 2, (H - 1) / 2
    info = CameraInfo(width=W, height=H, distortion_model=model, d=d, k=[f, 0, cx, 0, f, cy, 0, 0, 1],
                      r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=[0.0] * 12)
    info.header.frame_id = frame_id
    return info


@pytest.fixture()
def loop(request):
    harness = Loopback(**getattr(request, "param", {}))
    yield harness
    harness.close()


def publish_infos(loop: Loopback, thermal: CameraInfo | None, rgb: CameraInfo | None) -> None:
    assert loop.wait_for(lambda: loop.node.count_subscribers("/test/thermal/camera_info") > 0)
    for _ in range(3):  # camera_info comes with every frame on a robot
        if thermal is not None:
            loop.thermal_info_pub.publish(thermal)
        if rgb is not None:
            loop.rgb_info_pub.publish(rgb)
        time.sleep(0.05)


@pytest.mark.parametrize("loop", [{}, {"rectify": False}], indirect=True, ids=["rectify", "rectify-off"])
def test_distorted_cameras_are_fused_rectified_and_the_fused_camera_info_is_the_rectified_model(loop):
    thermal_info, rgb_info = camera_info([-0.3, 0.08, 0.0, 0.0, 0.0]), camera_info([-0.1, 0.0, 0.0, 0.0, 0.0])
    lenses = {name: LensModel.from_camera_info(info) for name, info in (("thermal", thermal_info), ("rgb", rgb_info))}
    thermal = distort_image(SCENE.thermal_mono16, lenses["thermal"])
    rgb = distort_image(SCENE.visible, lenses["rgb"])
    publish_infos(loop, thermal_info, rgb_info)
    loop.send(make_image(thermal, "mono16", SECOND, "thermal"), make_image(rgb, "bgr8", SECOND, "rgb"))
    assert loop.wait_for(lambda: len(loop.fused) == 1 and len(loop.infos) == 1)
    out = np.frombuffer(bytes(loop.fused[0].data), np.uint8).reshape(H, W, 3)
    rectify = loop.node.params.rectify
    if rectify:
        rectified_rgb = Rectifier(lenses["rgb"])
        expected = loop.node.pipeline.fuse(Rectifier(lenses["thermal"])(thermal), rectified_rgb(rgb))
        assert list(loop.infos[0].d) == [0.0] * 5  # the fused image has no distortion left
        assert np.allclose(loop.infos[0].k, rectified_rgb.rectified_model().k)
    else:
        expected = loop.node.pipeline.fuse(thermal, rgb)
        assert list(loop.infos[0].d) == list(rgb_info.d)
    assert np.array_equal(out, expected)
    assert "bad messages: camera_info" not in loop.diagnostic_values()


def test_an_unusable_camera_info_is_counted_and_its_camera_fused_unrectified(loop):
    publish_infos(loop, camera_info([0.2, 0.1, 0.0, 0.0], model="kannala_brandt"), None)
    loop.send(make_image(SCENE.thermal_mono16, "mono16", SECOND, "thermal"),
              make_image(SCENE.visible, "bgr8", SECOND, "rgb"))
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    out = np.frombuffer(bytes(loop.fused[0].data), np.uint8).reshape(H, W, 3)
    assert np.array_equal(out, loop.node.pipeline.fuse(SCENE.thermal_mono16, SCENE.visible))
    assert loop.wait_for(lambda: int(loop.diagnostic_values().get("bad messages: camera_info", 0)) >= 3, timeout=4), \
        loop.diagnostic_values()
