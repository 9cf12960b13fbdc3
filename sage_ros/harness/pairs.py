"""Thermal + RGB pairs to publish: the generated night street, or a dataset folder's pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sage_core.image_files import dataset_pairs, read_pair
from sage_core.synthetic import SyntheticScene
from sage_core.video_files import is_clip, read_clip

#: Thermal stamped this far behind RGB: a realistic offset that approximate-time pairing must absorb.
THERMAL_OFFSET_NS = 3_000_000


@dataclass
class InputPair:
    thermal: np.ndarray  # as published (mono16 or mono8)
    thermal_encoding: str
    visible: np.ndarray  # BGR uint8


def synthetic_pairs(count: int, width: int, height: int, rate: float, thermal_encoding: str = "mono16"
                    ) -> list[InputPair]:
    scene = SyntheticScene(width, height)
    pairs = []
    for index in range(count):
        frame = scene.frame(index / rate)
        thermal = frame.thermal_mono16 if thermal_encoding == "mono16" else frame.thermal_mono8
        pairs.append(InputPair(thermal, thermal_encoding, frame.visible))
    return pairs


def dataset_input_pairs(folder: str | Path, count: int) -> list[InputPair]:
    """Pairs from a dataset folder (ir/, vis/), cycled to ``count``, or the first ``count`` frames of a clip
    folder (ir.mp4 + vis.mp4: a video is played in order, never cycled); thermal published as mono8."""
    import cv2

    if is_clip(Path(folder)):
        return [InputPair(ir, "mono8", vis) for ir, vis in read_clip(Path(folder), count)]
    files = dataset_pairs(folder)
    pairs = []
    for index in range(count):
        ir, vis = read_pair(files[index % len(files)])
        if ir.ndim == 3:
            ir = cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY if ir.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        if ir.dtype != np.uint8:
            ir = (ir // 257).astype(np.uint8) if ir.dtype == np.uint16 else ir.astype(np.uint8)
        if vis.ndim == 2:
            vis = cv2.cvtColor(vis, cv2.COLOR_GRAY2BGR)
        pairs.append(InputPair(ir, "mono8", vis[..., :3].astype(np.uint8)))
    return pairs
