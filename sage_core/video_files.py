"""Registered thermal + visible video clips: a folder with ``ir.mp4`` and ``vis.mp4``, frame i with frame i.

The layout of the M3SVD clips (``../shared/datasets/m3svd_clips/``); read with OpenCV. The demo plays such
a folder through the node, the evaluation measures temporal stability on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from sage_core.errors import FusionInputError

CLIP_FILES = ("ir.mp4", "vis.mp4")


def is_clip(folder: Path) -> bool:
    """Whether ``folder`` holds a clip (``ir.mp4`` and ``vis.mp4``)."""
    return all((Path(folder) / name).is_file() for name in CLIP_FILES)


def clip_fps(folder: Path) -> float:
    """The visible stream's frame rate (what the container says; 30 when it says nothing)."""
    capture = cv2.VideoCapture(str(Path(folder) / CLIP_FILES[1]))
    try:
        return float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
    finally:
        capture.release()


def read_clip(folder: Path, limit: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(thermal gray uint8, visible BGR uint8) frame pairs of an ``ir.mp4`` + ``vis.mp4`` clip folder."""
    captures = [cv2.VideoCapture(str(Path(folder) / name)) for name in CLIP_FILES]
    try:
        if not all(c.isOpened() for c in captures):
            raise FusionInputError(f"{folder}: cannot open ir.mp4 and vis.mp4")
        count = 0
        while limit is None or count < limit:
            ok_ir, ir = captures[0].read()
            ok_vis, vis = captures[1].read()
            if not (ok_ir and ok_vis):
                return
            yield cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY), vis
            count += 1
    finally:
        for capture in captures:
            capture.release()
