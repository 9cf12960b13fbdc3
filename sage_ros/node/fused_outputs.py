"""The fusion node's outputs: ``fused/image``, ``fused/image/compressed`` (JPEG) and ``fused/camera_info``.

Publishers are made by the node's own factory (plain, or lifecycle publishers in the managed node).
:meth:`FusedOutputs.wanted` says whether anybody subscribes to any of them: the node skips all work
while nobody does (``lazy``), and the JPEG is only encoded while somebody subscribes to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sage_ros.codec.compressed import encode_jpeg
from sage_ros.codec.image import image_to_cdr

IMAGE_TOPIC, COMPRESSED_TOPIC, INFO_TOPIC = "fused/image", "fused/image/compressed", "fused/camera_info"


class FusedOutputs:
    """The three fused publishers, created with ``create_publisher(msg_type, topic, qos)``."""

    def __init__(self, create_publisher: Callable, qos_depth: int) -> None:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        self.image = create_publisher(Image, IMAGE_TOPIC, qos)
        self.compressed = create_publisher(CompressedImage, COMPRESSED_TOPIC, qos)
        self.info = create_publisher(CameraInfo, INFO_TOPIC, qos)
        self.publishers = (self.image, self.compressed, self.info)

    @property
    def topic_names(self) -> list[str]:
        return [publisher.topic_name for publisher in self.publishers]

    def wanted(self) -> bool:
        """Whether any fused output has a subscriber (a cheap matched-count query per publisher)."""
        return any(publisher.get_subscription_count() > 0 for publisher in self.publishers)

    def publish_image(self, image: np.ndarray, encoding: str, header, jpeg_quality: int) -> None:
        """``image`` (already in ``encoding``'s layout) on fused/image, and as JPEG when that has subscribers."""
        self.image.publish(image_to_cdr(header, image, encoding))  # serialized here: one copy of the pixels
        if self.compressed.get_subscription_count() > 0:
            fmt, data = encode_jpeg(image, encoding, jpeg_quality)
            self.compressed.publish(CompressedImage(header=header, format=fmt, data=data))

    def publish_info(self, info: CameraInfo) -> None:
        self.info.publish(info)

    def destroy(self, destroy_publisher: Callable) -> None:
        for publisher in self.publishers:
            destroy_publisher(publisher)
