"""The rgb frame's depth image: depth messages checked, kept a moment, and given to each fused pair by stamp.

With ``use_depth``, the node subscribes to ``rgb/depth``, a depth image registered to the rgb camera
(RealSense's ``aligned_depth_to_color``). :class:`DepthMatcher` takes the decoded depth images (the node's
executor and decoder threads, or the bag tool in line), refuses those whose size is not the rgb camera's
(counted as ``depth_size``, like any bad message), and hands each pair the intake makes to ``on_ready`` with
the depth whose stamp is nearest the rgb frame's, within ``slop``. A pair waits for its depth only while it
may still come: until a depth stamped at or after the rgb frame is in, ``slop`` seconds of "now" have passed,
or the depth stream is stale (nothing for ``stale_timeout``: the pair goes on at once, registered at
``registration_distance``). Pairs leave in the order they came. What "now" is, is the caller's: the node's
clock, or the bag's log time. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from sage_core.cameras import Camera
from sage_ros.stream.frames import Frame, Job
from sage_ros.stream.stats import RateMeter


def registration_problem(depth_info, rgb_info) -> str | None:
    """Why a depth camera_info is not the rgb camera's image (size, camera matrix), or None when it is."""
    if rgb_info is None:
        return None
    if (depth_info.width, depth_info.height) != (rgb_info.width, rgb_info.height):
        return (f"depth camera_info is {depth_info.width}x{depth_info.height} but the rgb camera_info "
                f"{rgb_info.width}x{rgb_info.height}: the depth image must be registered to the rgb camera")
    if not np.allclose(np.asarray(depth_info.k, float), np.asarray(rgb_info.k, float), rtol=0.01, atol=1.0):
        return (f"depth camera_info k {list(depth_info.k)} is not the rgb camera's {list(rgb_info.k)}: the depth "
                "image must be registered to the rgb camera (RealSense: aligned_depth_to_color)")
    return None


@dataclass
class _Pending:
    job: Job
    stamp_ns: int  # the rgb frame's
    ready_ns: int  # "now" when the pair was made


class DepthMatcher:
    """Depth images by stamp, and the pairs waiting for theirs; see the module docstring.

    ``on_ready(job)`` gets each pair with its depth (or None); ``report_bad(source, kind, message)`` each refused
    depth image; ``rgb_size()`` the rgb camera's latest (width, height) or None; ``on_stale(message)`` is told
    when depth stops coming while pairs do, and when it is back.
    """

    def __init__(self, slop_s: float, queue_size: int, stale_timeout_s: float, on_ready: Callable[[Job], None],
                 report_bad: Callable[[str, str, str], None], rgb_size: Callable[[], tuple[int, int] | None],
                 on_stale: Callable[[str], None] | None = None) -> None:
        self._on_ready, self._report_bad, self._rgb_size, self._on_stale = on_ready, report_bad, rgb_size, on_stale
        self._lock = threading.Lock()
        self._depths: deque[tuple[int, Frame]] = deque()
        self._pending: deque[_Pending] = deque()
        self._last_arrival_ns: int | None = None
        self._stale = False
        self.rate = RateMeter()
        self.with_depth = self.without_depth = 0
        self.configure(slop_s, queue_size, stale_timeout_s)

    def configure(self, slop_s: float, queue_size: int, stale_timeout_s: float) -> None:
        """The run-time changeable settings (the node's slop, queue_size and stale_timeout)."""
        with self._lock:
            self.slop_ns, self.queue_size = round(slop_s * 1e9), queue_size
            self.stale_ns = round(stale_timeout_s * 1e9)

    def add_depth(self, frame: Frame, stamp_ns: int, now_ns: int) -> bool:
        """One decoded depth image (uint16 mm or float32 m) with its stamp; whether it was kept."""
        rgb = self._rgb_size()
        if rgb is not None and frame.size != tuple(rgb):
            self._refuse(frame.size, rgb)
            return False
        with self._lock:
            self.rate.tick(now_ns / 1e9)
            self._last_arrival_ns = now_ns
            self._depths.append((stamp_ns, frame))
            while len(self._depths) > self.queue_size:
                self._depths.popleft()
            ready = self._release(now_ns)
        self._hand_over(ready)
        return True

    def _refuse(self, size: tuple[int, int], rgb: tuple[int, int]) -> None:
        self._report_bad("depth", "depth_size", f"depth image is {size[0]}x{size[1]} but the rgb images are "
                         f"{rgb[0]}x{rgb[1]}: expected a depth image registered to the rgb camera (RealSense: "
                         "aligned_depth_to_color)")

    def add_pair(self, job: Job, stamp_ns: int, now_ns: int) -> None:
        """A fused pair to be (``stamp_ns``: its rgb frame's stamp), made at ``now_ns``."""
        with self._lock:
            self._pending.append(_Pending(job, stamp_ns, now_ns))
            ready = self._release(now_ns)
        self._hand_over(ready)

    def poll(self, now_ns: int) -> None:
        """Let go of the pairs whose wait is over at ``now_ns`` (the node calls this from a timer)."""
        with self._lock:
            ready = self._release(now_ns)
        self._hand_over(ready)

    def finish(self) -> None:
        """No more messages (end of a bag): every waiting pair goes, with the best depth there is."""
        with self._lock:
            ready = [self._match(item) for item in self._pending]
            self._pending.clear()
        self._hand_over(ready)

    def _live(self, now_ns: int) -> bool:
        return self._last_arrival_ns is not None and now_ns - self._last_arrival_ns < self.stale_ns

    def _release(self, now_ns: int) -> list[Job]:
        """Under the lock: the waiting pairs (in order) whose depth is decided."""
        live, ready = self._live(now_ns), []
        newest = self._depths[-1][0] if self._depths else None
        while self._pending:
            head = self._pending[0]
            decided = (not live or (newest is not None and newest >= head.stamp_ns)
                       or now_ns - head.ready_ns >= self.slop_ns or len(self._pending) > self.queue_size)
            if not decided:
                break
            ready.append(self._match(self._pending.popleft()))
        if ready and live == self._stale:  # a change: depth stopped coming, or came back
            self._stale = not live
            if self._on_stale is not None:
                self._on_stale("no depth image for stale_timeout: fusing at registration_distance" if self._stale
                               else "depth images back: registering per pixel")
        return ready

    def _match(self, item: _Pending) -> Job:
        """Under the lock: the pair with the depth nearest its rgb stamp within slop, or none. A depth kept before
        the rgb size was known and of another size is refused now (once: it is dropped)."""
        rgb = item.job.frames.get(Camera.RGB)
        if rgb is not None:
            for entry in [entry for entry in self._depths if entry[1].size != rgb.size]:
                self._depths.remove(entry)
                self._refuse(entry[1].size, rgb.size)
        best = min(self._depths, key=lambda entry: abs(entry[0] - item.stamp_ns), default=None)
        if best is not None and abs(best[0] - item.stamp_ns) <= self.slop_ns:
            self.with_depth += 1
            return replace(item.job, depth=best[1])
        self.without_depth += 1
        return item.job

    def _hand_over(self, ready: list[Job]) -> None:
        for job in ready:  # outside the lock: the worker's submit may take its own
            self._on_ready(job)

    def diagnostics(self, now_ns: int) -> list[tuple[str, str]]:
        """The /diagnostics key-values of the depth input."""
        with self._lock:
            return [("depth rate (Hz)", f"{self.rate.rate(now_ns / 1e9):.2f}"),
                    ("pairs fused with depth", str(self.with_depth)),
                    ("pairs fused without depth", str(self.without_depth))]
