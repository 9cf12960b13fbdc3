"""Bags for the bag tests: written from generated or dataset pairs, read back into plain values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import Reader

from sage_core.alignment import Aligner
from sage_core.pipeline import FramePipeline
from sage_core.synthetic import SyntheticScene
from sage_core.thermal import ThermalNormalizer
from sage_ros.bags.messages import TYPESTORE
from sage_ros.bags.offline import OfflineFusion
from sage_ros.parameters import FusionParams


@dataclass
class Message:
    topic: str
    msgtype: str
    log_ns: int
    raw: bytes

    @property
    def msg(self):
        return TYPESTORE.deserialize_cdr(self.raw, self.msgtype)

    @property
    def stamp_ns(self) -> int:
        header = self.msg.header
        return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec

    def image(self) -> np.ndarray:
        msg = self.msg
        return np.asarray(msg.data).reshape(msg.height, msg.width, -1).squeeze()


def read_bag(path: Path) -> list[Message]:
    with Reader(path) as reader:
        return [Message(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in reader.messages()]


def on(messages: list[Message], topic: str) -> list[Message]:
    return [m for m in messages if m.topic == topic]


def synthetic_pairs(count: int = 6, width: int = 96, height: int = 80, thermal: str = "mono16"):
    scene = SyntheticScene(width, height, seed=3)
    frames = [scene.frame(i / 10) for i in range(count)]
    return [(f.thermal_mono16 if thermal == "mono16" else f.thermal_mono8, thermal, f.visible) for f in frames]


def pipeline(fuser, params: FusionParams) -> FramePipeline:
    return FramePipeline(fuser, ThermalNormalizer(params.thermal_config()), Aligner(params.alignment_config()))


def fusion(fuser, params: FusionParams | None = None) -> OfflineFusion:
    """The bag path's fusion with a model loaded once per test session."""
    params = params or FusionParams()
    return OfflineFusion(params, pipeline(fuser, params))


def expected_fused(fuser, params: FusionParams, pairs) -> list[np.ndarray]:
    """What FramePipeline gives for the pairs in order (its thermal range smooths over them, as in a bag)."""
    frames = pipeline(fuser, params)
    return [frames.fuse(thermal, visible) for thermal, _, visible in pairs]


def jpeg_roundtrip(bgr: np.ndarray, quality: int = 90) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_UNCHANGED)
