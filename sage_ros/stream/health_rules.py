"""The fusion node's health rules, without ROS: when a camera is stale, and the level and message of /diagnostics.

- ERROR: inference failed on the latest frame (within :data:`FAILURE_MEMORY_S`), with the last error;
  or both cameras are live but nothing was published for ``stale_timeout`` (stamps that never pair);
- WARN: a camera is stale, a topic has publishers but no data (QoS or transport), or the background
  alignment check measures a residual above ``alignment_warn_px``;
- OK otherwise: "idle" while nobody subscribes to a fused output (nothing is processed then), else
  "fusing with" the model.

The node (``node/health_monitor.py``) and the bag tool (``bags/offline.py``) apply the same staleness
rule; they differ only in their clock (the node's, or the bag's log time).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from sage_core.cameras import Camera
from sage_ros.stream.stats import FusionStats

#: How long a failed inference keeps the node in ERROR when no frame has succeeded since.
FAILURE_MEMORY_S = 10.0


class Level(enum.Enum):
    OK = "ok"
    WARN = "warn"
    ERROR = "error"


def is_stale(last_arrival_ns: int | None, started_ns: int, now_ns: int, timeout_s: float) -> bool:
    """Whether a camera whose latest message arrived at ``last_arrival_ns`` (None: never, counted from
    ``started_ns``) is stale at ``now_ns``: nothing for more than ``timeout_s`` (times on one clock)."""
    reference = last_arrival_ns if last_arrival_ns is not None else started_ns
    return (now_ns - reference) / 1e9 > timeout_s


class Staleness:
    """``staleness(camera)``: whether a camera is stale now, by :func:`is_stale` on each of its clocks (ns).

    ``last_arrival(camera)``: when its latest message arrived, one time per clock (None: never);
    ``timeout()``: the ``stale_timeout`` in force (s); ``clocks``: now on each clock. Stale on any clock
    is stale: the node passes its own clock (ROS time: a simulator's or a played bag's) and the steady
    clock, so that a paused bag, whose clock stands still, still makes its cameras stale. A camera that
    never sent counts from ``started`` (construction; the bag tool sets it to the first log time).
    """

    def __init__(self, last_arrival: Callable[[Camera], tuple[int, ...] | None], timeout: Callable[[], float],
                 clocks: tuple[Callable[[], int], ...] = (time.monotonic_ns,)) -> None:
        self._last_arrival, self._timeout, self.clocks = last_arrival, timeout, clocks
        self.started: tuple[int, ...] | None = tuple(clock() for clock in clocks)

    def __call__(self, camera: Camera) -> bool:
        last, timeout = self._last_arrival(camera), self._timeout()
        return any(is_stale(None if last is None else last[i], self.started[i], clock(), timeout)
                   for i, clock in enumerate(self.clocks))


def assess_health(stats: FusionStats, stale: list[str], silent: list[str], model: str,
                  starved: str | None = None, misaligned: str | None = None,
                  idle: str | None = None) -> tuple[Level, str]:
    """(level, message) for /diagnostics; ``stale`` and ``silent`` name the cameras with those problems,
    ``starved`` says why nothing is fused although both cameras are live, ``idle`` why nothing is
    processed (nobody subscribes: OK, not a fault)."""
    failing = stats.failing(FAILURE_MEMORY_S)
    if failing is not None:
        return Level.ERROR, f"inference failing on recent frames: {failing}"
    if starved is not None:
        return Level.ERROR, starved
    problems = [f"{camera} stale" for camera in stale]
    problems += [f"{camera}: publishers but no data (QoS?)" for camera in silent]
    problems += [misaligned] if misaligned else []
    if problems:
        return Level.WARN, "; ".join(problems)
    return Level.OK, idle or f"fusing with {model}"
