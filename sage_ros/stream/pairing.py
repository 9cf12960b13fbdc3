"""Approximate-time pairing of two streams (thermal, rgb): the sets message_filters' C++ ApproximateTime forms.

The C++ policy (``sync_policies/approximate_time.h``) does not pair on arrival. It keeps a *candidate*
set (one message per camera), whose later message is the *pivot*, and publishes it only once no
future message can give a better set: when the earlier camera's next message is past the pivot, when
the candidate is already tighter than any set that could still contain the pivot (a 10 % age penalty
favours older sets), or, with an inter-message lower bound ("rate bound") for a camera, when that
bound proves the camera's next message will come too late. Sets wider than ``slop``
(``max_interval_duration``) are never formed; a camera whose queue (``queue_size``) overflows drops
its oldest message and may not be a pivot until the other camera's head has moved past what it dropped.

Two additions for a robot, which leave the C++ sets alone in steady streams:

- a decision deadline: given arrival times (``now_ns``), a candidate whose later message waited longer
  than one period of the slower camera (estimated from the stamps) plus ``slop`` is published at the
  next call (``add``, ``expire``), so a dropped frame or a stopped camera costs a bounded delay. The C++
  policy waits at most about one period of the earlier camera, so the deadline only acts on drops;
- ``drain``: at the end of a stream, publish what is best among what is left.

Messages are kept sorted by stamp, so out-of-order delivery still pairs; a message older than its
camera's last published one, or a repeated stamp, can no longer pair: the first counts as unpaired,
the second is reported as ``duplicate_stamp``. Pure Python, no ROS, O(queue) per message; not
thread-safe (the intake locks around it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from sage_core.cameras import Camera

#: message_filters' default age penalty: a later set must be this much (relatively) tighter to win.
AGE_PENALTY = 0.1
#: Stamp gaps kept per camera for its period estimate (a median: a dropped frame does not move it).
PERIOD_WINDOW = 9
#: The period assumed before a camera's stamps give one (two messages): a slow thermal camera's, so the
#: first sets are decided by the policy, not by the deadline.
UNKNOWN_PERIOD_NS = 200_000_000
#: Decision waits kept for statistics.
WAIT_HISTORY = 1024


@dataclass(frozen=True)
class Stamped:
    stamp_ns: int
    item: Any
    arrival_ns: int | None = field(default=None, compare=False)


class ApproximateTimePairer:
    """Pairs items of two streams as message_filters' ApproximateTime policy does, ``slop`` as its maximum
    interval. ``on_pair(thermal, rgb)`` gets each set; ``report(camera, kind, message)``, if given, each
    message refused for a reason worth counting (``duplicate_stamp``)."""

    def __init__(self, queue_size: int, slop: float, on_pair: Callable[[Stamped, Stamped], None],
                 report: Callable[[Camera, str, str], None] | None = None, rate_bound_fraction: float = 0.0) -> None:
        """``rate_bound_fraction`` > 0: each camera's rate bound follows its estimated period times this
        fraction (a camera at 30 Hz sends no two frames 17 ms apart at 0.5), so a set is proven best
        when both its messages are in, instead of when the next frames come; 0: the plain C++ policy."""
        self.on_pair, self.report = on_pair, report
        self.rate_bound_fraction = rate_bound_fraction
        self._queue: tuple[deque[Stamped], deque[Stamped]] = (deque(), deque())  # not yet examined, sorted
        self._past: tuple[list[Stamped], list[Stamped]] = ([], [])  # examined for the pending pivot
        self._candidate: tuple[Stamped, Stamped] | None = None  # (thermal, rgb)
        self._pivot: Camera | None = None
        self._pivot_ns = self._cand_start = self._cand_end = 0
        self._dropped = [False, False]  # has_dropped_messages: such a camera may not become the pivot
        self._bound_ns = [0, 0]  # inter-message lower bounds (rate bounds)
        self._published: list[int | None] = [None, None]  # each camera's last published stamp
        self._gaps: tuple[deque[int], deque[int]] = (deque(maxlen=PERIOD_WINDOW), deque(maxlen=PERIOD_WINDOW))
        self._newest: list[int | None] = [None, None]
        self.unpaired = 0
        self.counts: dict[str, int] = {}  # reported kinds
        self.waits_ns: deque[int] = deque(maxlen=WAIT_HISTORY)  # per published set: how long its later message waited
        self.forced = 0  # sets published by the deadline or drain, not proven best
        self.configure(queue_size, slop)

    # ----- configuration ------------------------------------------------------------------------

    def configure(self, queue_size: int, slop: float) -> None:
        """Change queue size and slop at run time (queues are trimmed, not cleared; the search restarts)."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop * 1e9))
        self._restart()
        for camera in Camera:
            while len(self._queue[camera]) > self.queue_size:
                self._queue[camera].popleft()
                self.unpaired += 1
        self._process(None)

    def set_rate_bound(self, camera: Camera, seconds: float) -> None:
        """The least time between two stamps of ``camera`` (message_filters' inter-message lower bound): lets a
        set be proven best before that camera's next message comes. A wrong bound gives worse sets."""
        if seconds < 0:
            raise ValueError(f"rate bound must be >= 0 seconds, got {seconds}")
        self._bound_ns[camera] = int(round(seconds * 1e9))

    # ----- what the intake calls ----------------------------------------------------------------

    @property
    def queues(self) -> tuple[list[Stamped], list[Stamped]]:
        """Each camera's waiting messages, oldest first (a copy)."""
        return tuple(self._past[c] + list(self._queue[c]) for c in Camera)  # type: ignore[return-value]

    def add(self, camera: Camera, stamp_ns: int, item: Any, now_ns: int | None = None) -> bool:
        """Add an item of ``camera`` arriving at ``now_ns`` (None: no deadline); returns True when this item went
        out in a set during the call (most sets are decided later, when a later message proves them best)."""
        if now_ns is not None:
            self.expire(now_ns)  # what was due before this message came is decided without it
        entry = Stamped(stamp_ns, item, now_ns)
        if not self._admit(camera, entry):
            return False
        queue = self._queue[camera]
        newest = queue[-1] if queue else (self._past[camera][-1] if self._past[camera] else None)
        if newest is not None and stamp_ns < newest.stamp_ns:
            self._restart()  # out of order: put it in its place and search again from the heads
            position = next(i for i, e in enumerate(queue) if e.stamp_ns > stamp_ns)
            queue.insert(position, entry)
        else:
            queue.append(entry)
            self._learn_period(camera, stamp_ns)
        published = self._process(now_ns)
        if len(queue) + len(self._past[camera]) > self.queue_size:
            self._restart()
            queue.popleft()  # the policy drops the offending camera's oldest message
            self.unpaired += 1
            self._dropped[camera] = True
            published += self._process(now_ns)
        return any(pair[camera] is entry for pair in published)

    def expire(self, now_ns: int) -> int:
        """Publish the pending set if its later message has waited past the deadline at ``now_ns``; returns
        the number of sets published."""
        count = 0
        while self._candidate is not None:
            deadline = self.next_deadline_ns
            if deadline is None or now_ns < deadline:
                break
            self._publish(now_ns, forced=True)
            count += 1 + len(self._process(now_ns))
        return count

    def drain(self, now_ns: int | None = None) -> int:
        """End of the streams: publish the pending sets, the best among what is left; returns how many."""
        count = 0
        while self._candidate is not None:
            self._publish(now_ns, forced=True)
            count += 1 + len(self._process(now_ns))
        return count

    @property
    def pending_since_ns(self) -> int | None:
        """Arrival of the pending set's later message (None: nothing pending, or no arrival times)."""
        if self._candidate is None:
            return None
        arrivals = [e.arrival_ns for e in self._candidate if e.arrival_ns is not None]
        return max(arrivals) if arrivals else None

    @property
    def max_wait_ns(self) -> int:
        """How long a pending set may wait: one period of the slower camera (estimated) plus slop."""
        periods = [int(median(g)) if g else UNKNOWN_PERIOD_NS for g in self._gaps]
        return max(periods) + self.slop_ns

    @property
    def next_deadline_ns(self) -> int | None:
        """When the pending set is published at the latest (None: nothing pending, or no arrival times)."""
        since = self.pending_since_ns
        return None if since is None else since + self.max_wait_ns

    def withdraw(self, camera: Camera, stamp_ns: int) -> bool:
        """Take a waiting item out (it went out alone, so it must not go out in a set too); not counted
        unpaired. Returns whether it was waiting."""
        if not any(e.stamp_ns == stamp_ns for e in self.queues[camera]):
            return False
        self._restart()
        self._queue[camera].remove(next(e for e in self._queue[camera] if e.stamp_ns == stamp_ns))
        self._process(None)
        return True

    def flush(self, camera: Camera, newer_than_ns: int | None = None) -> None:
        """Drop one camera's waiting items (all, or those stamped after ``newer_than_ns``): its clock changed,
        so they can no longer pair. Counted as unpaired."""
        waiting = self.queues[camera]
        if not waiting or newer_than_ns is not None and waiting[-1].stamp_ns <= newer_than_ns:
            return  # the common case, on every message: nothing to drop
        self._restart()
        queue = self._queue[camera]  # sorted by stamp: what goes is at the right end
        while queue and (newer_than_ns is None or queue[-1].stamp_ns > newer_than_ns):
            queue.pop()
            self.unpaired += 1
        self._process(None)

    def clear(self) -> None:
        self._restart()
        for queue in self._queue:
            queue.clear()

    # ----- the policy ---------------------------------------------------------------------------

    def _admit(self, camera: Camera, entry: Stamped) -> bool:
        """Refuse what can no longer pair: a repeated stamp (reported) or one older than a published set."""
        last = self._published[camera]
        if last is not None and entry.stamp_ns < last:
            self.unpaired += 1  # sets go out in stamp order: its partners are gone
            return False
        if entry.stamp_ns == last or any(e.stamp_ns == entry.stamp_ns for e in self.queues[camera]):
            self.counts["duplicate_stamp"] = self.counts.get("duplicate_stamp", 0) + 1
            if self.report is not None:
                self.report(camera, "duplicate_stamp",
                            f"{camera.label} stamp {entry.stamp_ns} ns repeats one already received; dropped")
            return False
        return True

    def _learn_period(self, camera: Camera, stamp_ns: int) -> None:
        newest = self._newest[camera]
        if newest is not None and stamp_ns > newest:
            self._gaps[camera].append(stamp_ns - newest)
        self._newest[camera] = stamp_ns
        if self.rate_bound_fraction > 0 and self._gaps[camera]:  # from the first gap: the fraction is the margin
            self._bound_ns[camera] = int(self.rate_bound_fraction * median(self._gaps[camera]))

    def _restart(self) -> None:
        """Cancel the search in progress: every examined message goes back to its queue."""
        for camera in Camera:
            self._queue[camera].extendleft(reversed(self._past[camera]))
            self._past[camera].clear()
        self._candidate, self._pivot = None, None

    def _take_candidate(self, start: Camera, start_ns: int, end_ns: int) -> None:
        """The heads become the candidate; what was examined before them can no longer pair."""
        for past in self._past:
            self.unpaired += len(past)
            past.clear()
        self._candidate = (self._queue[Camera.THERMAL][0], self._queue[Camera.RGB][0])
        self._cand_start, self._cand_end = start_ns, end_ns

    def _better(self, end_ns: int, start_ns: int) -> bool:
        """Whether the interval [start, end] beats the candidate, with the age penalty."""
        return (end_ns - self._cand_end) * (1 + AGE_PENALTY) < start_ns - self._cand_start

    def _proven(self, end_ns: int) -> bool:
        """Any later set must contain [pivot, end]: the candidate is best if that is already wider."""
        return (end_ns - self._cand_end) * (1 + AGE_PENALTY) >= self._pivot_ns - self._cand_start

    def _process(self, now_ns: int | None) -> list[tuple[Stamped, Stamped]]:
        """Examine the heads while both cameras have one; returns the sets published."""
        published: list[tuple[Stamped, Stamped]] = []
        while self._queue[0] and self._queue[1]:
            heads = (self._queue[0][0].stamp_ns, self._queue[1][0].stamp_ns)
            start = Camera.RGB if heads[1] < heads[0] else Camera.THERMAL  # ties: thermal starts, rgb ends
            end = start.other
            start_ns, end_ns = heads[start], heads[end]
            self._dropped[start] = False  # nothing it dropped could beat what the other camera has now
            if self._pivot is None:
                if end_ns - start_ns > self.slop_ns or self._dropped[end]:
                    self._queue[start].popleft()  # too wide, or a pivot that may have lost its partner
                    self.unpaired += 1
                    continue
                self._take_candidate(start, start_ns, end_ns)
                self._pivot, self._pivot_ns = end, end_ns
            elif self._better(end_ns, start_ns):
                self._take_candidate(start, start_ns, end_ns)  # same pivot
            self._past[start].append(self._queue[start].popleft())
            if start is self._pivot or self._proven(end_ns) or self._proven_by_bounds():
                published.append(self._publish(now_ns, forced=False))
        return published

    def _proven_by_bounds(self) -> bool:
        """With a camera's queue empty, assume its next message comes as early as its rate bound allows:
        if even that cannot beat the candidate, it is best. Undoes its trial moves."""
        if self._queue[0] and self._queue[1]:
            return False
        moved = [0, 0]
        try:
            while True:
                times = [self._virtual_ns(c) for c in Camera]
                start = Camera.RGB if times[1] < times[0] else Camera.THERMAL
                if self._proven(times[start.other]):
                    return True
                if self._better(times[start.other], times[start]) or not self._queue[start]:
                    return False
                self._past[start].append(self._queue[start].popleft())
                moved[start] += 1
        finally:
            for camera in Camera:
                for _ in range(moved[camera]):
                    self._queue[camera].appendleft(self._past[camera].pop())

    def _virtual_ns(self, camera: Camera) -> int:
        if self._queue[camera]:
            return self._queue[camera][0].stamp_ns
        return max(self._past[camera][-1].stamp_ns + self._bound_ns[camera], self._pivot_ns)

    def _publish(self, now_ns: int | None, forced: bool) -> tuple[Stamped, Stamped]:
        """Send the candidate, put the examined messages back and drop the candidate's own (the caller goes
        on examining)."""
        candidate = self._candidate
        assert candidate is not None
        self._restart()
        for camera in Camera:
            assert self._queue[camera][0] is candidate[camera]
            self._queue[camera].popleft()
            self._published[camera] = candidate[camera].stamp_ns
        since = [e.arrival_ns for e in candidate if e.arrival_ns is not None]
        if now_ns is not None and since:
            self.waits_ns.append(now_ns - max(since))
        self.forced += forced
        self.on_pair(*candidate)
        return candidate
