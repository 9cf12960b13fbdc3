"""The node with a rig over loopback: per-pixel registration from rgb/depth, the registration distance changed at
run time, and bad depth messages counted like any bad message."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from sage_core.cameras import Camera
from tests.rig_helpers import RGB_SIZE, near_person
from tests.ros_harness import Loopback, make_image

pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test

SECOND = 1_000_000_000
FRAMES = near_person(seed=1)


@pytest.fixture()
def loop():
    # slop 0.3 s: a pair waits that long for its depth, so a loaded machine's late delivery cannot fail the test.
    # The stream's steps across frames off (steadying, coefficient averaging, the gain limits, the cap):
    # each frame must equal its registration computed alone.
    harness = Loopback(**FRAMES.params, use_depth=True, diagnostics_period=0.2, slop=0.3, thermal_steadying=0.0,
                       fusion_smoothing=0.0, fusion_motion_gain_limit=0.0, fusion_still_gain_limit=0.0,
                       fusion_change_cap=0.0)
    harness.depth_pub = harness.probe.create_publisher(Image, "rgb/depth", qos_profile_sensor_data)
    yield harness
    harness.close()


def camera_info(camera: str, **changes) -> CameraInfo:
    return CameraInfo(**{**FRAMES.camera_info(camera), **changes})


def publish_infos(loop: Loopback, depth_info: CameraInfo | None = None) -> None:
    assert loop.wait_for(lambda: loop.node.count_subscribers("/test/rgb/camera_info") > 0
                         and loop.depth_pub.get_subscription_count() > 0)
    for _ in range(3):
        loop.thermal_info_pub.publish(camera_info("thermal"))
        loop.rgb_info_pub.publish(depth_info or camera_info("rgb"))  # rgb/depth's camera_info is rgb/camera_info
        time.sleep(0.05)
    assert loop.wait_for(lambda: all(loop.node.lenses.view(camera) is not None for camera in Camera))
    # The depth stream is live before the first pair (one image, stamped far from any pair's): from now on a pair
    # waits for its own depth, whichever of the three messages DDS delivers first.
    loop.depth_pub.publish(make_image(FRAMES.depth, "16UC1", SECOND // 2, "rgb"))
    assert loop.wait_for(lambda: loop.node.depth_input.matcher.rate.last is not None)


def send(loop: Loopback, stamp: int, depth: bool = True) -> None:
    if depth:
        loop.depth_pub.publish(make_image(FRAMES.depth, "16UC1", stamp, "rgb"))
    loop.send(make_image(FRAMES.thermal, "mono16", stamp, "thermal"), make_image(FRAMES.rgb, "bgr8", stamp, "rgb"))


def fused(loop: Loopback, index: int) -> np.ndarray:
    msg = loop.fused[index]
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)


def test_the_node_registers_per_pixel_by_depth_and_at_the_distance_set_at_run_time(loop):
    publish_infos(loop)
    send(loop, SECOND)
    assert loop.wait_for(lambda: len(loop.fused) == 1 and len(loop.infos) == 1)
    node = loop.node
    aligner = node.rig.aligner(node.lenses)
    expected = node.pipeline.fuse(FRAMES.thermal, FRAMES.rgb, depth=FRAMES.depth, aligner=aligner)
    assert np.array_equal(fused(loop, 0), expected)
    far = node.pipeline.fuse(FRAMES.thermal, FRAMES.rgb, aligner=aligner)
    assert np.abs(far.astype(int) - expected.astype(int)).mean() > 1.0  # the depth made a difference
    plan = aligner.plan(FRAMES.rig.thermal.size, RGB_SIZE)  # fused/camera_info: the rgb camera's, cropped
    assert np.allclose(loop.infos[0].k[2], FRAMES.rig.rgb.k[0, 2] - plan.crop[0])

    assert node.set_parameters([Parameter("registration_distance", value=1.2)])[0].successful
    send(loop, 2 * SECOND, depth=False)  # no depth for this one: it waits slop, then goes at 1.2 m
    assert loop.wait_for(lambda: len(loop.fused) == 2)
    at_distance = node.pipeline.fuse(FRAMES.thermal, FRAMES.rgb, aligner=node.rig.aligner(node.lenses))
    assert np.array_equal(fused(loop, 1), at_distance)
    assert not np.array_equal(at_distance, far)
    refused = node.set_parameters([Parameter("registration_distance", value=0.0)])[0]
    assert not refused.successful and "out of range" in refused.reason  # ROS checks the declared range
    assert node.set_parameters([Parameter("registration_distance", value=math.inf)])[0].successful
    assert loop.wait_for(lambda: loop.diagnostic_values().get("pairs fused with depth") == "1"
                         and loop.diagnostic_values().get("pairs fused without depth") == "1")
    assert loop.diagnostic_values()["alignment check"].startswith("off: the rig's geometry")


def test_bad_depth_encodings_sizes_and_camera_infos_are_counted_and_the_node_goes_on(loop):
    publish_infos(loop)
    send(loop, SECOND)  # the rgb size is known from here on
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    height, width = FRAMES.depth.shape
    loop.depth_pub.publish(make_image(np.zeros((height, width), np.uint8), "mono8", 2 * SECOND, "rgb"))
    loop.depth_pub.publish(make_image(np.zeros((height // 2, width // 2), np.uint16), "16UC1", 2 * SECOND, "rgb"))
    metres = (FRAMES.depth / 1000).astype(np.float32)
    metres[FRAMES.depth == 0] = np.nan  # 32FC1's "no depth": taken
    loop.depth_pub.publish(make_image(metres, "32FC1", 2 * SECOND, "rgb"))
    assert loop.wait_for(lambda: loop.node.stats.bad.counts() == {"depth_encoding": 1, "depth_size": 1})
    loop.send(make_image(FRAMES.thermal, "mono16", 2 * SECOND, "thermal"), make_image(FRAMES.rgb, "bgr8", 2 * SECOND,
                                                                                     "rgb"))
    assert loop.wait_for(lambda: len(loop.fused) == 2)
    assert loop.node.depth_input.matcher.with_depth == 2  # the metres image was used
    other_camera = camera_info("rgb", k=[2.0 * v for v in FRAMES.camera_info("rgb")["k"][:8]] + [1.0])
    loop.node.depth_input._on_info(other_camera)  # a depth camera_info that is not the rgb camera's
    assert loop.node.stats.bad.counts()["depth_camera_info"] == 1
    assert loop.wait_for(lambda: int(loop.diagnostic_values().get("bad messages: depth_size", 0)) == 1)
