"""What the node's callbacks hand to inference: a validated camera frame, and a job of one or two frames
(with, for a pair, the depth image of its rgb frame when the node registers per pixel)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sage_core.cameras import Camera


@dataclass
class Frame:
    """A validated input image: the array (thermal raw, rgb as BGR), its message header, its encoding."""

    array: np.ndarray
    header: object
    encoding: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.array.shape[1], self.array.shape[0]


@dataclass
class Job:
    """Frames to publish one output from: both cameras (a pair) or one (passthrough)."""

    frames: dict[Camera, Frame]
    depth: Frame | None = None  # the rgb frame's depth image (uint16 mm or float32 m), pairs only

    @property
    def is_pair(self) -> bool:
        return len(self.frames) == 2

    @classmethod
    def pair(cls, thermal: Frame, rgb: Frame) -> Job:
        return cls({Camera.THERMAL: thermal, Camera.RGB: rgb})
