"""What the node's callbacks hand to inference, and the thread that runs it.

The callbacks only convert and pair; a :class:`Job` (a pair, or one camera's frame when its partner
is stale) goes to the :class:`InferenceWorker`, which holds at most one pending job: a newer job
replaces it and the replaced one is counted as dropped, so a slow model never stalls the executor
and latency never grows with a queue. On a CPU it runs two jobs at once (a frame's model and colour
work overlaps the previous frame's) and publishes their results in order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sage_core.cameras import Camera

#: glibc's mallopt parameters, and the values set by :func:`keep_freed_memory`.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (half a 64 MB arena heap): every buffer of a 4K frame but one
_TRIM_THRESHOLD = 256 * 2**20


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


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of returning it to the kernel; False where it cannot.

    Every frame allocates and frees some 50 MB of full-frame buffers (messages, float planes). By default
    glibc maps a buffer over its adaptive threshold afresh and trims freed heap tops, so each frame's
    buffers are faulted in again page by page and zeroed by the kernel: a fifth of the node's CPU at
    1280x1024 (perf: ``exc_page_fault``, ``clear_page_erms``); with this, page faults halve. The process
    keeps its peak working set (resident memory flat, about 50 MB more at 1280x1024)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mapped = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        return bool(mapped and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): their allocators, their defaults
        return False


class InferenceWorker:
    """Runs ``process(job)`` for the newest submitted job on ``threads`` threads; see the module docstring.

    ``process(job)`` does the work and returns what publishes its result (a callable, or None when there is
    nothing to publish); those run one at a time in the order the jobs were taken, so a frame that finishes
    early waits for its elder and the output never goes back in time. With two threads, a frame's work
    overlaps the previous one's instead of queueing behind it. Starting a worker sets the process's
    allocator to keep freed memory (:func:`keep_freed_memory`).
    """

    def __init__(self, process: Callable[[Job], Callable[[], None] | None], on_drop: Callable[[], None],
                 threads: int = 1) -> None:
        keep_freed_memory()
        self._process, self._on_drop = process, on_drop
        self._pending: Job | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._taken = 0  # jobs taken so far: the next one's place in the publishing order
        self._turn = 0  # the place whose result may publish now
        self._threads = [threading.Thread(target=self._run, name=f"sage_fusion_inference_{i}", daemon=True)
                         for i in range(max(1, int(threads)))]

    @property
    def threads(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            if self._pending is not None:
                self._on_drop()
            self._pending = job
            self._wake.notify_all()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job, self._pending = self._pending, None
                place, self._taken = self._taken, self._taken + 1
            try:
                publish = self._process(job)
            except Exception:  # noqa: BLE001 - process reports its own errors; the order must go on
                publish = None
            with self._wake:
                while self._turn != place and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
            try:
                if publish is not None:
                    publish()
            finally:
                with self._wake:
                    self._turn += 1
                    self._wake.notify_all()
