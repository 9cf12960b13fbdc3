"""One camera's compressed messages, decoded in arrival order on a thread of their own (never on the executor)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

#: Compressed messages kept per camera while its decoder is busy; older ones are dropped (and counted).
DECODE_QUEUE_DEPTH = 2


class DecodeQueue(threading.Thread):
    """One camera's compressed messages, decoded in arrival order on a thread of their own.

    Holds at most ``depth`` undecoded messages: when decoding falls behind, the oldest is dropped
    (``on_drop``), so latency stays bounded, as with the inference worker.
    """

    def __init__(self, name: str, handle: Callable[[object], None], on_drop: Callable[[], None],
                 on_error: Callable[[Exception], None], depth: int = DECODE_QUEUE_DEPTH) -> None:
        super().__init__(name=name, daemon=True)
        self._handle, self._on_drop, self._on_error = handle, on_drop, on_error
        self._queue: deque[object] = deque()
        self._depth = depth
        self._wake = threading.Condition()
        self._stopping = False

    def put(self, msg: object) -> None:
        with self._wake:
            if len(self._queue) >= self._depth:
                self._queue.popleft()
                self._on_drop()
            self._queue.append(msg)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self.join(timeout=5.0)

    def run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                msg = self._queue.popleft()
            try:
                self._handle(msg)
            except Exception as exc:  # noqa: BLE001 - one message must not end the camera's decoding
                self._on_error(exc)
