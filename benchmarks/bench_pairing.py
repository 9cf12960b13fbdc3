"""Pairing against message_filters' C++ ApproximateTime and the robot cases of issue 21 (ROS-free, seconds).

    python benchmarks/bench_pairing.py

Two tables. The C++ policy's own two-topic suite: the sets it expects, what the pairer before issue 21
formed (pairing on arrival; its algorithm is kept below as the baseline), and what it forms now. The
robot cases (``sage_ros.stream.pairing_sim``): the sets an oracle seeing every stamp forms (mutual
nearest), before and now, the pair stamp differences (mean, max) and, now, how long each set's later
message waited for the decision (mean, max) against the bound (one period of the slower camera + slop).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from statistics import mean
from typing import Any

from sage_core.cameras import Camera
from sage_ros.stream.pairing import ApproximateTimePairer, Stamped
from sage_ros.stream.pairing_sim import MS, closest_sets, robot_rigs, run

S = 1_000_000_000
DROPPED = [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)]
#: (name, queue size, thermal rate bound s, inputs (time s, topic), the sets the C++ suite expects)
CPP_SUITE = [
    ("exact match", 10, None, [(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)], [(0, 0), (3, 3), (6, 6)]),
    ("perfect match", 10, None, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4)]),
    ("imperfect match", 10, None, [(0, 0), (1, 1), (2, 0), (3, 0), (5, 1), (6, 0), (7, 1)], [(0, 1), (6, 5)]),
    ("acceleration", 10, None, [(0, 0), (7, 1), (12, 0), (15, 1), (17, 0), (18, 1)], [(12, 7), (17, 18)]),
    ("dropped messages, queue 1", 1, None, DROPPED, [(4, 3), (10, 11)]),
    ("dropped messages, queue 2", 2, None, DROPPED, [(0, 1), (4, 3), (8, 7), (10, 11)]),
    ("long queue", 5, None, [(t, 0) for t in range(9)] + [(3, 1), (9, 0), (10, 0), (11, 0), (12, 0), (10, 1), (13, 0)],
     [(10, 10)]),
    ("double publish", 10, None, [(0, 0), (1, 1), (3, 1), (3, 0)], [(0, 1), (3, 3)]),
    ("rate bound 1.5", 10, 1.5, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4)]),
    ("rate bound 2", 10, 2.0, [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4), (6, 7)]),
]


class BaselinePairer:
    """BASELINE ONLY: the pairer before issue 21 (sage_ros/stream/pairing.py at 85bd194), kept here to measure
    against. Pairs on arrival with the closest waiting message of the other camera within slop, then drops
    everything older in both queues (message_filters' Python ApproximateTimeSynchronizer)."""

    def __init__(self, queue_size: int, slop: float, on_pair: Callable[[Stamped, Stamped], None]) -> None:
        self.on_pair, self.queue_size, self.slop_ns = on_pair, queue_size, int(round(slop * 1e9))
        self.queues: tuple[deque[Stamped], deque[Stamped]] = (deque(), deque())
        self.unpaired = 0

    def add(self, camera: Camera, stamp_ns: int, item: Any) -> bool:
        mine, other = self.queues[camera], self.queues[camera.other]
        entry = Stamped(stamp_ns, item)
        if mine and stamp_ns < mine[-1].stamp_ns:
            mine.insert(next(i for i, e in enumerate(mine) if e.stamp_ns > stamp_ns), entry)
        else:
            mine.append(entry)
        while len(mine) > self.queue_size:
            mine.popleft()
            self.unpaired += 1
        best = min(other, key=lambda e: abs(e.stamp_ns - stamp_ns), default=None)
        if best is None or abs(best.stamp_ns - stamp_ns) > self.slop_ns:
            return False
        for queue, through in ((mine, stamp_ns), (other, best.stamp_ns)):
            while queue and queue[0].stamp_ns <= through:
                if queue.popleft().stamp_ns != through:
                    self.unpaired += 1
        self.on_pair(*((entry, best) if camera is Camera.THERMAL else (best, entry)))
        return True


def cpp_sets(make: Callable[..., Any], queue_size: int, bound: float | None, inputs) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    pairer = make(queue_size, 1e6, lambda t, r: pairs.append((t.stamp_ns // S, r.stamp_ns // S)))
    if bound is not None and hasattr(pairer, "set_rate_bound"):
        pairer.set_rate_bound(Camera.THERMAL, bound)
    for time, topic in inputs:
        pairer.add(Camera.THERMAL if topic == 0 else Camera.RGB, time * S, time)
    return pairs


def cpp_table() -> list[str]:
    lines = ["| C++ suite scenario | expected sets | before | now |", "| --- | --- | --- | --- |"]
    for name, queue_size, bound, inputs, expected in CPP_SUITE:
        before = cpp_sets(BaselinePairer, queue_size, bound, inputs)
        now = cpp_sets(ApproximateTimePairer, queue_size, bound, inputs)
        marks = [f"{sets} {'ok' if sets == expected else 'differs'}" for sets in (before, now)]
        lines.append(f"| {name} | {expected} | {marks[0]} | {marks[1]} |")
    return lines


def stats(pairs: list[tuple[int, int]]) -> str:
    if not pairs:
        return "0 | - | -"
    differences = [abs(t - r) / MS for t, r in pairs]
    return f"{len(pairs)} | {mean(differences):.1f} | {max(differences):.1f}"


def robot_table() -> list[str]:
    lines = ["| robot case | expected: sets, mean ms, max ms | before: sets, mean, max (same sets) | "
             "now: sets, mean, max (same sets) | now: wait mean / max ms (bound) | "
             "with the node's rate bound (0.5 of each period): sets, wait mean / max ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for rig in robot_rigs():
        expected = closest_sets(rig)
        before, now = run(rig, BaselinePairer), run(rig, ApproximateTimePairer)
        same = ["yes" if pairs == expected else f"{len(set(pairs) & set(expected))} equal"
                for pairs in (before.pairs, now.pairs)]
        bound = (rig.slower_period_ns + rig.slop * 1e9) / MS
        wait = f"{mean(now.waits_ns) / MS:.1f} / {max(now.waits_ns) / MS:.1f} ({bound:.0f})"
        bounded = run(rig, partial(ApproximateTimePairer, rate_bound_fraction=0.5))
        with_bound = (f"{'same' if bounded.pairs == expected else 'DIFFERENT'}, "
                      f"{mean(bounded.waits_ns) / MS:.1f} / {max(bounded.waits_ns) / MS:.1f}")
        lines.append(f"| {rig.name} | {stats(expected).replace(' |', ',')} | "
                     f"{stats(before.pairs).replace(' |', ',')} ({same[0]}) | "
                     f"{stats(now.pairs).replace(' |', ',')} ({same[1]}) | {wait} | {with_bound} |")
    return lines


def main() -> int:
    print("\n".join(cpp_table()))
    print()
    print("\n".join(robot_table()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
