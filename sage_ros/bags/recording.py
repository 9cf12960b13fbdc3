"""Bags written from image arrays: the demo's ``fused.mcap``, and the bags tests and benchmarks fuse.

Images go in raw (``sensor_msgs/Image``) or through an image_transport-style transport
(``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` or ``<topic>/compressedDepth``, with the
format strings the ROS 2 plugins write), so what these bags hold is what a robot's recorder holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sage_ros.bags.messages import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    camera_info_message,
    compressed_message,
    image_message,
)
from sage_ros.bags.storage import OutputBag
from sage_ros.codec.compressed import encode_compressed_depth, encode_jpeg, encode_png
from sage_ros.codec.header import stamp_ns

#: how an image is recorded (raw, or a codec of the compressed transports) -> (topic suffix, message type)
RECORDED_AS = {"raw": ("", IMAGE), "jpeg": ("/compressed", COMPRESSED), "png": ("/compressed", COMPRESSED),
              "compressedDepth": ("/compressedDepth", COMPRESSED)}


class BagRecorder:
    """Writes images to an open :class:`OutputBag`, adding each topic on first use."""

    def __init__(self, bag: OutputBag, jpeg_quality: int = 90) -> None:
        self.bag = bag
        self.jpeg_quality = jpeg_quality
        self._connections: dict[str, object] = {}

    def topic_of(self, topic: str, transport: str) -> str:
        return topic + RECORDED_AS[transport][0]

    def image(self, topic: str, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, log_ns: int,
              transport: str = "raw") -> None:
        """One image on ``topic`` (raw) or ``topic/compressed...`` (compressed transports)."""
        connection = self.connection(self.topic_of(topic, transport), RECORDED_AS[transport][1])
        if transport == "raw":
            raw = image_message(array, encoding, stamp_ns, frame_id)
        else:
            encode = {"jpeg": lambda: encode_jpeg(array, encoding, self.jpeg_quality),
                      "png": lambda: encode_png(array, encoding),
                      "compressedDepth": lambda: encode_compressed_depth(array, encoding)}[transport]
            raw = compressed_message(*encode(), stamp_ns, frame_id)
        self.bag.write(connection, log_ns, raw)

    def connection(self, topic: str, msgtype: str):
        """The bag's connection for ``topic``, added on first use."""
        if topic not in self._connections:
            self._connections[topic] = self.bag.add_topic(topic, msgtype)
        return self._connections[topic]


@dataclass(frozen=True)
class PairStreams:
    """How a pair bag names and sends its two cameras."""

    thermal_topic: str = "/thermal/image"
    rgb_topic: str = "/rgb/image"
    thermal_transport: str = "raw"  # raw, png, compressedDepth (16-bit) or jpeg (mono8)
    rgb_transport: str = "raw"  # raw, jpeg or png
    rate_hz: float = 10.0
    start_ns: int = 1_700_000_000_000_000_000
    thermal_offset_ns: int = 3_000_000  # thermal stamped a little after RGB, as two real cameras are
    log_delay_ns: int = 20_000_000  # the recorder receives each image this long after its stamp


def write_pair_bag(path: str | os.PathLike, pairs: Iterable[tuple[np.ndarray, str, np.ndarray]],
                   streams: PairStreams = PairStreams(), storage: str | None = None, jpeg_quality: int = 90) -> None:
    """A bag of (thermal array, thermal encoding, visible BGR) pairs at ``streams.rate_hz``; RGB is ``bgr8``."""
    with OutputBag(path, storage) as bag:
        recorder = BagRecorder(bag, jpeg_quality)
        for index, (thermal, thermal_encoding, visible) in enumerate(pairs):
            stamp = streams.start_ns + round(index * 1e9 / streams.rate_hz)
            recorder.image(streams.rgb_topic, visible, "bgr8", stamp, "rgb_optical", stamp + streams.log_delay_ns,
                           streams.rgb_transport)
            thermal_stamp = stamp + streams.thermal_offset_ns
            recorder.image(streams.thermal_topic, thermal, thermal_encoding, thermal_stamp, "thermal_optical",
                           thermal_stamp + streams.log_delay_ns, streams.thermal_transport)


def write_loopback_bag(path: str | os.PathLike, namespace: str, pairs, result, thermal_offset_ns: int,
                       camera_infos: dict[str, dict] | None = None) -> int:
    """What a loopback run sent and received (``sage_ros.harness.loopback``), as a bag: the input pairs logged when
    published (with a rendered rig's camera_infos and depth), the fused images the recorder received logged when
    they arrived. Returns the fused count."""
    with OutputBag(path, overwrite=True) as bag:
        recorder = BagRecorder(bag)
        for index, stamp in sorted(result.published_ns.items()):
            pair = pairs[index]
            for label, fields in (camera_infos or {}).items():
                bag.write(recorder.connection(f"{namespace}/{label}/camera_info", CAMERA_INFO), stamp,
                          camera_info_message({"binning_x": 0, "binning_y": 0, **fields}, stamp, f"{label}_optical"))
            if pair.depth is not None:
                recorder.image(f"{namespace}/rgb/depth", pair.depth, "16UC1", stamp, "rgb_optical", stamp)
            recorder.image(f"{namespace}/rgb/image", pair.visible, "bgr8", stamp, "rgb_optical", stamp)
            recorder.image(f"{namespace}/thermal/image", pair.thermal, pair.thermal_encoding,
                           stamp + thermal_offset_ns, "thermal_optical", stamp)
        fused = recorder.connection(f"{namespace}/fused/image", IMAGE)
        for _, (arrival_ns, msg) in sorted(result.fused_messages.items()):
            stamp = stamp_ns(msg.header)
            array = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1)
            array = array[..., 0] if msg.encoding == "mono8" else array
            bag.write(fused, arrival_ns, image_message(array, msg.encoding, stamp, msg.header.frame_id))
    return len(result.fused_messages)
