"""Real rclpy nodes on loopback for integration tests: the fusion node plus a probe node.

The probe publishes thermal/rgb images and records what the fusion node publishes.
Both spin in a background executor; ``wait_for`` polls with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sage_ros.codec.image import array_to_image_fields
from sage_ros.fusion_node import FusionNode
from sage_ros.harness.probe import NodeSource, fusion_diagnostics, wait_for
from sage_ros.topic_names import DIAGNOSTICS, FUSED_CAMERA_INFO, FUSED_IMAGE, camera_info_topic, image_topic


def make_compressed(data: bytes, fmt: str, stamp_ns: int, frame_id: str) -> CompressedImage:
    msg = CompressedImage(format=fmt, data=data)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


def make_image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    msg = Image(**array_to_image_fields(array, encoding))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


class Loopback:
    """A fusion node under test and a probe node, in one rclpy context of their own."""

    def __init__(self, namespace: str = "/test", **params) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        # torch: no engine export or timing at each start. Most tests stamp frames 1 s, 2 s, ... apart however
        # fast they send them: a wide stamp-jump window keeps the stamp guard out of their way (the tests of
        # the guard use stamps a day off, or set it).
        defaults = {"warmup": False, "backend": "torch", "max_stamp_jump": 1000.0}
        overrides = [Parameter(name, value=value) for name, value in {**defaults, **params}.items()]
        try:
            self.node = FusionNode(context=self.context, namespace=namespace, parameter_overrides=overrides)
        except Exception:
            rclpy.shutdown(context=self.context)
            raise
        self.probe = rclpy.create_node("probe", namespace=namespace, context=self.context)
        self.fused: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.diagnostics: list[DiagnosticArray] = []
        # What this test's node published, and nothing another node might (NodeSource).
        self.source = NodeSource(self.probe, self.node.get_name(), self.node.get_namespace())
        for msg_type, topic, received in ((Image, FUSED_IMAGE, self.fused), (CameraInfo, FUSED_CAMERA_INFO, self.infos),
                                          (DiagnosticArray, DIAGNOSTICS, self.diagnostics)):
            self.subscribe(msg_type, topic, received.append, 50)
        self.thermal_pub = self.probe.create_publisher(Image, image_topic("thermal"), qos_profile_sensor_data)
        self.rgb_pub = self.probe.create_publisher(Image, image_topic("rgb"), qos_profile_sensor_data)
        # The compressed transport's topics (image_transport naming), for nodes started with *_transport compressed.
        self.thermal_compressed_pub = self.probe.create_publisher(CompressedImage, "thermal/image/compressed",
                                                                  qos_profile_sensor_data)
        self.rgb_compressed_pub = self.probe.create_publisher(CompressedImage, "rgb/image/compressed",
                                                              qos_profile_sensor_data)
        self.thermal_depth_pub = self.probe.create_publisher(CompressedImage, "thermal/image/compressedDepth",
                                                             qos_profile_sensor_data)
        publishers = {"raw": {"thermal": self.thermal_pub, "rgb": self.rgb_pub},
                      "compressed": {"thermal": self.thermal_compressed_pub, "rgb": self.rgb_compressed_pub},
                      "compressedDepth": {"thermal": self.thermal_depth_pub}}
        inputs = [publishers[params.get(f"{camera}_transport", "raw")][camera] for camera in ("thermal", "rgb")]
        self.thermal_info_pub = self.probe.create_publisher(CameraInfo, camera_info_topic("thermal"),
                                                            qos_profile_sensor_data)
        self.rgb_info_pub = self.probe.create_publisher(CameraInfo, camera_info_topic("rgb"), qos_profile_sensor_data)
        self.executor = SingleThreadedExecutor(context=self.context)  # as rclpy.spin runs the node
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        assert self.wait_for(lambda: all(pub.get_subscription_count() > 0 for pub in inputs)
                             and self.probe.count_publishers(f"{namespace}/{FUSED_IMAGE}") > 0
                             and self.node.outputs.wanted()), "discovery failed"  # lazy: it must see the probe

    def subscribe(self, msg_type, topic: str, callback: Callable[[object], None], depth: int = 10):
        """A probe subscription that takes messages from this test's fusion node only."""
        return self.probe.create_subscription(msg_type, topic, self.source.only(topic, callback), depth)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        return wait_for(condition, timeout)

    def send(self, thermal: Image | None = None, rgb: Image | None = None, gap: float = 0.0) -> None:
        if thermal is not None:
            self.thermal_pub.publish(thermal)
        if gap:
            time.sleep(gap)
        if rgb is not None:
            self.rgb_pub.publish(rgb)

    def diagnostic_values(self) -> dict[str, str]:
        """The fusion node's latest /diagnostics values (without its message), or {}."""
        values = fusion_diagnostics(self.diagnostics[-1]) if self.diagnostics else None
        return {key: value for key, value in (values or {}).items() if key != "message"}

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self._spinner.join(timeout=5.0)  # the spin thread must end before the context it waits on
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)
