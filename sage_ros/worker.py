"""What the node's callbacks hand to inference, and the thread that runs it.

The callbacks only convert and pair; a :class:`Job` (a pair, or one camera's frame when its partner
is stale) goes to the :class:`InferenceWorker`, which holds at most one pending job: a newer job
replaces it and the replaced one is counted as dropped, so a slow model never stalls the executor
and latency never grows with a queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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

    @property
    def is_pair(self) -> bool:
        return len(self.frames) == 2

    @classmethod
    def pair(cls, thermal: Frame, rgb: Frame) -> Job:
        return cls({Camera.THERMAL: thermal, Camera.RGB: rgb})


class InferenceWorker(threading.Thread):
    """Runs ``process(job)`` for the newest submitted job; see the module docstring."""

    def __init__(self, process: Callable[[Job], None], on_drop: Callable[[], None]) -> None:
        super().__init__(name="sage_fusion_inference", daemon=True)
        self._process, self._on_drop = process, on_drop
        self._pending: Job | None = None
        self._wake = threading.Condition()
        self._stopping = False

    def submit(self, job: Job) -> None:
        with self._wake:
            if self._pending is not None:
                self._on_drop()
            self._pending = job
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self.join(timeout=5.0)

    def run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job, self._pending = self._pending, None
            self._process(job)
