"""What the fusion node reports on /diagnostics: running statistics and the health rules.

:class:`FusionStats` counts and times (thread-safe: the subscription callbacks and the inference
worker both record); :func:`assess_health` turns the node's state into a level and a message:

- ERROR: inference failed on the latest frame (within :data:`FAILURE_MEMORY_S`), with the last error;
  or both cameras are live but nothing was published for ``stale_timeout`` (stamps that never pair);
- WARN: a camera is stale, a topic has publishers but no data (QoS or transport), or the background
  alignment check measures a residual above ``alignment_warn_px``;
- OK otherwise: "idle" while nobody subscribes to a fused output (nothing is processed then), else
  "fusing with" the model.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class RateMeter:
    """Messages per second over a sliding window of arrival times."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque()
        self.last: float | None = None

    def tick(self, now: float) -> None:
        self.times.append(now)
        self.last = now
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()

    def rate(self, now: float) -> float:
        self._expire(now)
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)


class Window:
    """The last N samples of a quantity, summarised as mean / p95 / max."""

    def __init__(self, size: int = 200) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(value)

    def summary(self) -> dict[str, float]:
        if not self.values:
            return {}
        array = np.fromiter(self.values, float)
        return {"mean": float(array.mean()), "p95": float(np.percentile(array, 95)), "max": float(array.max())}


#: How long a failed inference keeps the node in ERROR when no frame has succeeded since.
FAILURE_MEMORY_S = 10.0


class FusionStats:
    """Everything the node counts and times, behind one lock."""

    STREAMS = ("thermal", "rgb", "fused")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rates = {name: RateMeter() for name in self.STREAMS}
        self.pair_dt_ms = Window()
        self.inference_ms = Window()
        self.latency_ms = Window()
        self.bad = Counter()
        self.dropped_pairs = 0
        self.published = 0
        self.passthrough = 0
        self.skipped_idle = 0  # messages not converted: nobody subscribed to a fused output
        self.decode_dropped = 0  # compressed messages dropped undecoded: decoding fell behind
        self.inference_failures = 0
        self.last_error: str | None = None
        self.last_outcome: tuple[bool, float] | None = None  # (succeeded, monotonic time) of the latest frame

    def outcome(self, error: str | None = None) -> None:
        """Record how the latest frame's inference ended: None for success, else the error text."""
        with self.lock:
            self.last_outcome = (error is None, time.monotonic())
            if error is not None:
                self.inference_failures += 1
                self.last_error = error

    def failing(self) -> str | None:
        """The last error when the latest frame failed recently, else None."""
        with self.lock:
            if self.last_outcome is None or self.last_outcome[0]:
                return None
            return self.last_error if time.monotonic() - self.last_outcome[1] <= FAILURE_MEMORY_S else None

    def arrived(self, stream: str) -> None:
        with self.lock:
            self.rates[stream].tick(time.monotonic())

    def last_arrival(self, stream: str) -> float | None:
        with self.lock:
            return self.rates[stream].last

    def bad_message(self, kind: str) -> None:
        with self.lock:
            self.bad[kind] += 1

    def record(self, **samples: float) -> None:
        with self.lock:
            for name, value in samples.items():
                getattr(self, name).add(value)

    def count(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def key_values(self, unpaired: int, extra: list[tuple[str, str]] = ()) -> list[KeyValue]:
        now = time.monotonic()
        with self.lock:
            items = [(f"{name} rate (Hz)", f"{meter.rate(now):.2f}") for name, meter in self.rates.items()]
            for label, window in (("pair stamp difference (ms)", self.pair_dt_ms),
                                  ("inference (ms)", self.inference_ms),
                                  ("end-to-end latency (ms)", self.latency_ms)):
                for stat, value in window.summary().items():
                    items.append((f"{label} {stat}", f"{value:.2f}"))
            items += [("published", str(self.published)), ("dropped pairs", str(self.dropped_pairs)),
                      ("unpaired messages", str(unpaired)), ("passthrough frames", str(self.passthrough)),
                      ("skipped while idle", str(self.skipped_idle)),
                      ("compressed dropped undecoded", str(self.decode_dropped)),
                      ("inference failures", str(self.inference_failures)),
                      ("last inference error", self.last_error or ""),
                      ("bad messages", str(sum(self.bad.values())))]
            items += [(f"bad messages: {kind}", str(n)) for kind, n in sorted(self.bad.items())]
            items += list(extra)
        return [KeyValue(key=k, value=v) for k, v in items]


def assess_health(stats: FusionStats, stale: list[str], silent: list[str], model: str,
                  starved: str | None = None, misaligned: str | None = None,
                  idle: str | None = None) -> tuple[bytes, str]:
    """(level, message) for /diagnostics; ``stale`` and ``silent`` name the cameras with those problems,
    ``starved`` says why nothing is fused although both cameras are live, ``idle`` why nothing is
    processed (nobody subscribes: OK, not a fault)."""
    failing = stats.failing()
    if failing is not None:
        return DiagnosticStatus.ERROR, f"inference failing on recent frames: {failing}"
    if starved is not None:
        return DiagnosticStatus.ERROR, starved
    problems = [f"{camera} stale" for camera in stale]
    problems += [f"{camera}: publishers but no data (QoS?)" for camera in silent]
    problems += [misaligned] if misaligned else []
    if problems:
        return DiagnosticStatus.WARN, "; ".join(problems)
    return DiagnosticStatus.OK, idle or f"fusing with {model}"


def status(name: str, hardware_id: str, level: bytes, message: str, values: list[KeyValue]) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=values)
