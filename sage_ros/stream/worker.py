"""The threads that run inference: the newest job only, several at once, results published in frame order.

The callbacks only convert and pair; a :class:`~sage_ros.stream.frames.Job` (a pair, or one camera's
frame when its partner is stale) goes to the :class:`InferenceWorker`. While every thread is busy it
holds one pending job: a newer job replaces it and the replaced one is counted as dropped, so a slow
model never stalls the executor and latency never grows with a queue. Jobs that arrive together (two
pairs decided by one message) wait side by side as long as a thread is free to take each: a job is
only dropped for lack of a thread, never for being a few milliseconds early. On a CPU it runs two jobs
at once (a frame's model and colour work overlaps the previous frame's) and publishes their results in
order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from sage_ros.stream.frames import Job


class InferenceWorker:
    """Runs ``process(job)`` for the newest submitted job on ``threads`` threads; see the module docstring.

    ``process(job)`` does the work and returns what publishes its result (a callable, or None when there is
    nothing to publish); those run one at a time in the order the jobs were taken, so a frame that finishes
    early waits for its elder and the output never goes back in time. With two threads, a frame's work
    overlaps the previous one's instead of queueing behind it.
    """

    def __init__(self, process: Callable[[Job], Callable[[], None] | None], on_drop: Callable[[], None],
                 threads: int = 1) -> None:
        self._process, self._on_drop = process, on_drop
        self._pending: deque[Job] = deque()  # at most max(1, waiting threads) jobs
        self._waiting = 0  # threads waiting for a job (each will take one at once)
        self._wake = threading.Condition()
        self._stopping = False
        self._taken = 0  # jobs taken so far: the next one's place in the publishing order
        self._turn = 0  # the place whose result may publish now
        self._threads = [threading.Thread(target=self._run, name=f"sage_fusion_inference_{i}", daemon=True)
                         for i in range(max(1, int(threads)))]

    @property
    def threads(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            while len(self._pending) >= max(1, self._waiting):  # no thread left for the older one
                self._pending.popleft()
                self._on_drop()
            self._pending.append(job)
            self._wake.notify_all()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._waiting += 1
                while not self._pending and not self._stopping:
                    self._wake.wait()
                self._waiting -= 1
                if self._stopping:
                    return
                job = self._pending.popleft()
                place, self._taken = self._taken, self._taken + 1
            try:
                publish = self._process(job)
            except Exception:  # noqa: BLE001 - process reports its own errors; the order must go on
                publish = None
            with self._wake:
                while self._turn != place and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
            try:
                if publish is not None:
                    publish()
            finally:
                with self._wake:
                    self._turn += 1
                    self._wake.notify_all()
