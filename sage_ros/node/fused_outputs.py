"""The fusion node's outputs: ``fused/image``, ``fused/image/compressed`` (JPEG) and ``fused/camera_info``; the
same three under ``detection/`` for the machines' stream (``detection_stream``).

Publishers are made by the node's own factory (plain, or lifecycle publishers in the managed node).
:meth:`FusedOutputs.wanted` says whether anybody subscribes to any of them: the node skips all work
while nobody does (``lazy``), and the JPEG is only encoded while somebody subscribes to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from sage_ros.codec.cdr import image_to_cdr
from sage_ros.codec.compressed import encode_jpeg
from sage_ros.stream.frame_path import FusedFrame
from sage_ros.topic_names import FUSED_IMAGE, sibling_camera_info, transport_topic


def ros_header(header) -> Header:
    """Any header (ours, rclpy's) as rclpy's std_msgs/Header, which message constructors insist on."""
    if isinstance(header, Header):
        return header
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec), frame_id=header.frame_id)


class FusedOutputs:
    """The three fused publishers, created with ``create_publisher(msg_type, topic, qos)``.

    ``resolve`` is the node's ``resolve_topic_name``: like image_transport's CameraPublisher, the
    compressed and camera_info topics follow the *resolved* image topic, so remapping ``fused/image``
    alone moves all three."""

    def __init__(self, create_publisher: Callable, resolve: Callable[[str], str], qos_depth: int,
                 image_topic: str = FUSED_IMAGE) -> None:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        base = resolve(image_topic)
        self.image = create_publisher(Image, base, qos)
        self.compressed = create_publisher(CompressedImage, transport_topic(base, "compressed"), qos)
        self.info = create_publisher(CameraInfo, sibling_camera_info(base), qos)
        self.publishers = (self.image, self.compressed, self.info)

    @property
    def topic_names(self) -> list[str]:
        return [publisher.topic_name for publisher in self.publishers]

    def wanted(self) -> bool:
        """Whether any fused output has a subscriber (a cheap matched-count query per publisher)."""
        return any(publisher.get_subscription_count() > 0 for publisher in self.publishers)

    def subscriber_counts(self) -> dict[str, int]:
        """Matched subscriptions of each output, by topic (for /diagnostics)."""
        return {publisher.topic_name: publisher.get_subscription_count() for publisher in self.publishers}

    def publish_image(self, frame: FusedFrame, jpeg_quality: int, image=None) -> None:
        """The frame (or ``image``, another stream's picture of it) on the image topic, and as JPEG when that has
        subscribers."""
        image = frame.image if image is None else image
        self.image.publish(image_to_cdr(frame.header, image, frame.encoding))  # one copy of the pixels
        if self.compressed.get_subscription_count() > 0:
            fmt, data = encode_jpeg(image, frame.encoding, jpeg_quality)
            self.compressed.publish(CompressedImage(header=ros_header(frame.header), format=fmt, data=data))

    def publish_info(self, fields: dict, header) -> None:
        """fused/camera_info from ``codec.camera_info.fused_camera_info_fields``'s fields."""
        self.info.publish(CameraInfo(header=ros_header(header), **fields))

    def destroy(self, destroy_publisher: Callable, ack_timeout_s: float = 0.5) -> None:
        """Destroy the publishers, after their reliable subscribers have acknowledged what was published (at
        most ``ack_timeout_s`` each): the last frame before a stop reaches them whole, image and camera_info."""
        for publisher in self.publishers:
            # The context may already be shut down (an external shutdown): then nothing more can be sent anyway.
            with contextlib.suppress(Exception):
                publisher.wait_for_all_acked(Duration(nanoseconds=int(ack_timeout_s * 1e9)))
            destroy_publisher(publisher)
