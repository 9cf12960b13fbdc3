"""What every probe of a running fusion node shares: camera publishers, the node's diagnostics, waiting for it.

:class:`Player` publishes thermal and RGB images (as messages, or serialized as a C++ driver would), and for a
rendered rig the rgb camera's depth and both camera_infos;
:class:`NodeSource` lets a subscription take messages from one node only;
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


def node_connected(values: dict[str, str], fused_topic: str) -> bool:
    """Whether the fusion node, by its /diagnostics ``values``, has matched a publisher of each camera and a
    subscriber of ``fused_topic`` (resolved): from then on no frame is lost to discovery on its side."""
    inputs = all(int(values.get(f"matched publishers: {camera}", "0")) > 0 for camera in ("thermal", "rgb"))
    return inputs and int(values.get(f"matched subscribers: {fused_topic}", "0")) > 0


class NodeSource:
    """Messages from one node only (its name and namespace), told apart by their publishers' GIDs in the graph.

    ``only(topic, callback)`` makes a subscription callback that passes on what that node published and
    counts the rest (``rejected``): a probe reading /diagnostics or a fused topic never takes another node's
    messages, and if two nodes of that name share the domain it takes none (``ambiguous``) rather than guess.
    Where rclpy gives no message info (before Iron), the callback passes everything on.
    """

    def __init__(self, probe, name: str = FUSION_NODE_NAME, namespace: str = "/") -> None:
        self.probe, self.name, self.namespace = probe, name, namespace
        self._gids: set[bytes] = set()
        self.rejected = 0
        self.ambiguous = False

    def _refresh(self, topic: str) -> None:
        self.ambiguous = self.probe.get_node_names_and_namespaces().count((self.name, self.namespace)) > 1
        self._gids |= {bytes(info.endpoint_gid) for info in self.probe.get_publishers_info_by_topic(topic)
                       if (info.node_name, info.node_namespace) == (self.name, self.namespace)}

    def only(self, topic: str, callback: Callable[[object], None]) -> Callable:
        try:
            from rclpy.subscription import MessageInfo  # noqa: F401 - Iron and later pass it to a 2-argument callback
        except ImportError:
            return callback
        resolved = self.probe.resolve_topic_name(topic)

        def on_message(msg, info) -> None:
            gid = bytes((info.get("publisher_gid") or {}).get("data", b""))
            if gid not in self._gids or self.ambiguous:
                self._refresh(resolved)
            if gid in self._gids and not self.ambiguous:
                callback(msg)
            else:
                self.rejected += 1
        return on_message


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
