"""What the fusion node counts and times: arrival rates, windows of timings, outcomes, bad messages.

:class:`FusionStats` is thread-safe (the subscription callbacks, decoder threads and inference workers
all record) and knows nothing of ROS: :meth:`FusionStats.key_values` gives the ``/diagnostics``
key-value pairs as text, and the bag tool counts with the same class.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from sage_ros.stream.bad_messages import BadMessages


class RateMeter:
    """Messages per second over a sliding window of arrival times."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque()
        self.last: float | None = None

    def tick(self, now: float) -> None:
        if self.last is not None and now < self.last:  # the clock went back (a bag looped): start afresh
            self.times.clear()
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


class FusionStats:
    """Everything the node counts and times, behind one lock."""

    STREAMS = ("thermal", "rgb", "fused")

    def __init__(self, log_bad: Callable[[str], None] | None = None,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        """``log_bad(text)``: where bad messages are logged (rate-limited); None counts them silently.
        ``clock()``: now in ns, the clock rates and arrivals are measured on (the node's: ROS time, so a
        played bag's rates are the cameras' own); arrivals are also kept on the steady clock."""
        self.lock = threading.Lock()
        self.clock = clock
        self._arrivals_ns: dict[str, tuple[int, int]] = {}  # stream -> (clock ns, steady ns) of the latest
        self.rates = {name: RateMeter() for name in self.STREAMS}
        self.pair_dt_ms = Window()
        self.pair_wait_ms = Window()  # from a pair's later message to its decision (ApproximateTime waits)
        self.inference_ms = Window()
        self.latency_ms = Window()
        self.bad = BadMessages(log_bad)
        self.pairs = 0
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

    def failed(self, source: str, exc: Exception) -> None:
        """A frame's inference or publishing raised ``exc``: its outcome, and a bad message of kind
        ``inference_error``."""
        text = f"{type(exc).__name__}: {exc}"
        self.outcome(text)
        self.bad.report(source, "inference_error", text)

    def failing(self, memory_s: float) -> str | None:
        """The last error when the latest frame failed within ``memory_s``, else None."""
        with self.lock:
            if self.last_outcome is None or self.last_outcome[0]:
                return None
            return self.last_error if time.monotonic() - self.last_outcome[1] <= memory_s else None

    def arrived(self, stream: str) -> None:
        now, steady = self.clock(), time.monotonic_ns()
        with self.lock:
            self.rates[stream].tick(now / 1e9)
            self._arrivals_ns[stream] = (now, steady)

    def last_arrival(self, stream: str) -> float | None:
        """When ``stream``'s latest message arrived (s on ``clock``), or None."""
        with self.lock:
            return self.rates[stream].last

    def last_arrival_ns(self, stream: str) -> tuple[int, int] | None:
        """When ``stream``'s latest message arrived, (ns on ``clock``, ns on the steady clock), or None."""
        with self.lock:
            return self._arrivals_ns.get(stream)

    def record(self, **samples: float) -> None:
        with self.lock:
            for name, value in samples.items():
                getattr(self, name).add(value)

    def count(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def key_values(self, unpaired: int, extra: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """The /diagnostics values as (key, value) text pairs."""
        bad = self.bad.counts()
        now = self.clock() / 1e9
        with self.lock:
            items = [(f"{name} rate (Hz)", f"{meter.rate(now):.2f}") for name, meter in self.rates.items()]
            for label, window in (("pair stamp difference (ms)", self.pair_dt_ms),
                                  ("pair decision wait (ms)", self.pair_wait_ms),
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
                      ("bad messages", str(sum(bad.values())))]
            items += [(f"bad messages: {kind}", str(n)) for kind, n in sorted(bad.items())]
            items += list(extra)
        return items
