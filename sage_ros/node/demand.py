"""Lazy processing: whether anybody wants the fused output, and since when nobody has (the image_pipeline rule)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Demand:
    """Answers :meth:`wanted` for each input message: somebody subscribes to a fused output, or ``lazy()``
    is off. Logs when the answer changes; ``idle_since`` is when nobody subscribed any more (monotonic s)."""

    def __init__(self, subscribed: Callable[[], bool], lazy: Callable[[], bool], log: Callable[[str], None]) -> None:
        self._subscribed, self._lazy, self._log = subscribed, lazy, log
        self.idle_since: float | None = None

    def wanted(self) -> bool:
        if not self._lazy() or self._subscribed():
            if self.idle_since is not None:
                self.idle_since = None
                self._log("a fused output has a subscriber again: processing resumed")
            return True
        if self.idle_since is None:
            self.idle_since = time.monotonic()
            self._log("nobody subscribes to a fused output: skipping conversion and inference (lazy)")
        return False
