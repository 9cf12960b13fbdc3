"""ROS 2 smoke test: an Image published by one rclpy node arrives at another, over loopback only."""

import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


def test_harness_keeps_dds_on_loopback():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 0 <= int(os.environ["ROS_DOMAIN_ID"]) <= 232


def test_image_travels_between_two_nodes():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        sender = rclpy.create_node("smoke_sender", context=context)
        receiver = rclpy.create_node("smoke_receiver", context=context)
        received: list[Image] = []
        receiver.create_subscription(Image, "smoke/image", received.append, 10)
        publisher = sender.create_publisher(Image, "smoke/image", 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(sender)
        executor.add_node(receiver)

        message = Image(height=4, width=5, encoding="mono8", step=5, data=bytes(range(20)))
        message.header.frame_id = "thermal_optical"
        deadline = time.monotonic() + 20.0
        while not received and time.monotonic() < deadline:
            if publisher.get_subscription_count() > 0:
                publisher.publish(message)
            executor.spin_once(timeout_sec=0.1)
        assert received, "no image arrived within 20 s"
        got = received[0]
        assert (got.height, got.width, got.encoding, got.header.frame_id) == (4, 5, "mono8", "thermal_optical")
        assert np.array_equal(np.frombuffer(bytes(got.data), np.uint8), np.arange(20, dtype=np.uint8))
        executor.shutdown()
        sender.destroy_node()
        receiver.destroy_node()
    finally:
        rclpy.shutdown(context=context)
