"""What every probe of a running fusion node shares: camera publishers, the node's diagnostics, waiting for it.

:class:`Player` publishes thermal and RGB images (as messages, or serialized as a C++ driver would), and for a
rendered rig the rgb camera's depth and both camera_infos;
:func:`fusion_diagnostics` reads the fusion node's status out of a ``DiagnosticArray``;
:func:`wait_for` polls a condition with a deadline while something (an executor, a sleep) runs.
The demo's loopback, the live-traffic benchmarks and the tests' harness all use them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sage_ros.codec.cdr import image_to_cdr
from sage_ros.codec.header import Header
from sage_ros.codec.image import array_to_image_fields
from sage_ros.harness.pairs import THERMAL_OFFSET_NS, InputPair
from sage_ros.topic_names import DEPTH_IMAGE, camera_info_topic, image_topic

#: The fusion node's status in /diagnostics is named "<namespace>/<node name>: fusion".
FUSION_NODE_NAME = "sage_fusion"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0,
             step: Callable[[], None] = lambda: time.sleep(0.02)) -> bool:
    """Run ``step`` until ``condition()`` holds or ``timeout`` s pass; the condition's last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        step()
    return condition()


def fusion_diagnostics(msg, node_name: str = FUSION_NODE_NAME) -> dict[str, str] | None:
    """The fusion node's key-values (and ``message``) in a DiagnosticArray, or None if it holds none.

    ``node_name`` is the node's name (any namespace) or its fully qualified name without the leading /."""
    for status in msg.status:
        qualified = status.name.split(":", 1)[0]
        if qualified == node_name or qualified.endswith(f"/{node_name}"):
            values = {kv.key: kv.value for kv in status.values}
            values["message"] = status.message
            return values
    return None


class Player:
    """Publishes thermal and RGB images on ``node`` with the given reliability; with ``rig``, also the rgb camera's
    depth (``rgb/depth``) and the cameras' camera_info."""

    def __init__(self, node, reliable: bool = False, rig: bool = False) -> None:
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        self.thermal_pub = node.create_publisher(Image, image_topic("thermal"), qos)
        self.rgb_pub = node.create_publisher(Image, image_topic("rgb"), qos)
        self.depth_pub = node.create_publisher(Image, DEPTH_IMAGE, qos) if rig else None
        self.info_pubs = {label: node.create_publisher(CameraInfo, camera_info_topic(label), qos)
                          for label in ("thermal", "rgb")} if rig else {}

    def connected(self) -> bool:
        return bool(self.thermal_pub.get_subscription_count() and self.rgb_pub.get_subscription_count()
                    and all(pub.get_subscription_count() for pub in self.info_pubs.values()))

    def publish_rig(self, depth: object | None, infos: dict[str, dict], stamp_ns: int) -> None:
        """The camera_infos (CameraInfo fields by camera) and depth message (or None) of the frame at ``stamp_ns``."""
        from sensor_msgs.msg import CameraInfo

        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        for label, fields in infos.items():
            info = CameraInfo(**fields)
            info.header.stamp.sec, info.header.stamp.nanosec = sec, nanosec
            info.header.frame_id = f"{label}_optical"
            self.info_pubs[label].publish(info)
        if depth is not None:
            depth.header.stamp.sec, depth.header.stamp.nanosec = sec, nanosec
            self.depth_pub.publish(depth)

    @staticmethod
    def depth_messages(pairs: list[InputPair]) -> list[object | None]:
        """The rgb camera's depth message of each pair (16UC1), or None."""
        from sensor_msgs.msg import Image

        out = []
        for pair in pairs:
            message = None if pair.depth is None else Image(**array_to_image_fields(pair.depth, "16UC1"))
            if message is not None:
                message.header.frame_id = "rgb_optical"
            out.append(message)
        return out

    @staticmethod
    def messages(pairs: list[InputPair]) -> list[tuple[object, object]]:
        """(thermal, rgb) messages built once, before the clock starts."""
        from sensor_msgs.msg import Image

        out = []
        for pair in pairs:
            thermal = Image(**array_to_image_fields(pair.thermal, pair.thermal_encoding))
            thermal.header.frame_id = "thermal_optical"
            rgb = Image(**array_to_image_fields(pair.visible, "bgr8"))
            rgb.header.frame_id = "rgb_optical"
            out.append((thermal, rgb))
        return out

    def publish(self, thermal, rgb, stamp_ns: int) -> None:
        rgb.header.stamp.sec, rgb.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        thermal.header.stamp.sec, thermal.header.stamp.nanosec = divmod(stamp_ns + THERMAL_OFFSET_NS,
                                                                        1_000_000_000)
        self.rgb_pub.publish(rgb)
        self.thermal_pub.publish(thermal)

    def publish_serialized(self, pair: InputPair, stamp_ns: int) -> None:
        """``pair`` stamped ``stamp_ns`` (thermal a little later, as ``publish``), serialized here."""
        rgb = Header.at(stamp_ns, "rgb_optical")
        thermal = Header.at(stamp_ns + THERMAL_OFFSET_NS, "thermal_optical")
        self.rgb_pub.publish(image_to_cdr(rgb, pair.visible, "bgr8"))
        self.thermal_pub.publish(image_to_cdr(thermal, pair.thermal, pair.thermal_encoding))
