"""Rejected messages, counted by kind: one count for the node and the bag tool alike.

Each kind (``encoding``, ``data_length``, ``stamp_jump``, ``inference_error``, ...) is counted, its first
explanation kept (the bag tool's report), and, when a log function is given (the node's logger), logged
at most once per ``period_s`` per source and kind, so a camera sending garbage at 30 Hz cannot flood the log.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

#: Seconds between two log lines about the same kind of bad message from the same source.
LOG_PERIOD_S = 10.0


class BadMessages:
    """Thread-safe counts of rejected messages by kind (the decoder threads and the workers report too)."""

    def __init__(self, log: Callable[[str], None] | None = None, period_s: float = LOG_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log, self._period_s, self._clock = log, period_s, clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._first: dict[str, str] = {}
        self._last_logged: dict[tuple[str, str], float] = {}

    def report(self, source: str, kind: str, message: str) -> None:
        """One rejected message of ``kind`` from ``source`` (a camera's label, or "pair")."""
        with self._lock:
            self._counts[kind] += 1
            self._first.setdefault(kind, f"{source}: {message}")
            if self._log is None:
                return
            now = self._clock()
            if now - self._last_logged.get((source, kind), -1e18) < self._period_s:
                return
            self._last_logged[(source, kind)] = now
        self._log(f"dropping bad {source} message ({kind}): {message} "
                  f"[logged at most every {self._period_s:.0f} s per camera and kind]")

    def counts(self) -> Counter[str]:
        """kind -> messages dropped (a copy)."""
        with self._lock:
            return Counter(self._counts)

    def first(self) -> dict[str, str]:
        """kind -> the first such message's explanation, ``"source: message"`` (a copy)."""
        with self._lock:
            return dict(self._first)
