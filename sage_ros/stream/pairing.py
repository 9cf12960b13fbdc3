"""Approximate-time pairing of two streams (thermal, rgb), with message_filters semantics.

Each stream keeps at most ``queue_size`` messages. When a message arrives, the
other stream's queue is searched for the message closest in time; if it is
within ``slop`` seconds, the pair is emitted and both queues drop everything up
to and including the paired messages (older messages can no longer pair with
anything newer). Messages that never find a partner age out of their queue and
are counted as unpaired.

Pure Python and free of ROS, so the node's callbacks stay cheap and the policy
is unit-tested on its own. Not thread-safe by itself: the node calls it from
one callback group.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sage_core.cameras import Camera


@dataclass(frozen=True)
class Stamped:
    stamp_ns: int
    item: Any


class ApproximateTimePairer:
    """Pairs items of two streams whose stamps differ by at most ``slop`` seconds."""

    def __init__(self, queue_size: int, slop: float, on_pair: Callable[[Stamped, Stamped], None]) -> None:
        """``on_pair(thermal, rgb)`` is called for every pair; queues are indexed by :class:`Camera`."""
        self.on_pair = on_pair
        self.queues: tuple[deque[Stamped], deque[Stamped]] = (deque(), deque())
        self.unpaired = 0
        self.configure(queue_size, slop)

    def configure(self, queue_size: int, slop: float) -> None:
        """Change queue size and slop at run time (queues are trimmed, not cleared)."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop * 1e9))
        for queue in self.queues:
            self._trim(queue)

    def _trim(self, queue: deque[Stamped]) -> None:
        while len(queue) > self.queue_size:
            queue.popleft()
            self.unpaired += 1

    def add(self, camera: Camera, stamp_ns: int, item: Any) -> bool:
        """Add an item of ``camera``; returns True when it completed a pair."""
        mine, other = self.queues[camera], self.queues[camera.other]
        entry = Stamped(stamp_ns, item)
        if mine and stamp_ns < mine[-1].stamp_ns:
            # Out of order (a replayed bag, a clock jump): keep the queue sorted.
            position = next(i for i, e in enumerate(mine) if e.stamp_ns > stamp_ns)
            mine.insert(position, entry)
        else:
            mine.append(entry)
        self._trim(mine)
        best = min(other, key=lambda e: abs(e.stamp_ns - stamp_ns), default=None)
        if best is None or abs(best.stamp_ns - stamp_ns) > self.slop_ns:
            return False
        self._drop_through(mine, stamp_ns)
        self._drop_through(other, best.stamp_ns)
        pair = (entry, best) if camera is Camera.THERMAL else (best, entry)
        self.on_pair(*pair)
        return True

    def _drop_through(self, queue: deque[Stamped], stamp_ns: int) -> None:
        """Remove entries up to and including ``stamp_ns``; older ones never paired."""
        while queue and queue[0].stamp_ns <= stamp_ns:
            dropped = queue.popleft()
            if dropped.stamp_ns != stamp_ns:
                self.unpaired += 1

    def flush(self, camera: Camera, newer_than_ns: int | None = None) -> None:
        """Drop one camera's waiting items (all, or those stamped after ``newer_than_ns``): its clock changed,
        so they can no longer pair. Counted as unpaired."""
        queue = self.queues[camera]  # sorted by stamp: what goes is at the right end
        while queue and (newer_than_ns is None or queue[-1].stamp_ns > newer_than_ns):
            queue.pop()
            self.unpaired += 1

    def clear(self) -> None:
        for queue in self.queues:
            queue.clear()
