"""A node process's life: spin until SIGINT or SIGTERM, then stop in order, publishing nothing half-done.

rclpy's own signal handlers shut the context down inside the signal handler, while a worker thread may
be between a frame's image and its camera_info: what it publishes next fails. Here a signal is only a
request (:class:`StopRequest`); the executor stops spinning within ``poll_s``, and the caller then
deactivates the node (inputs off, the frame being published finished, queued ones dropped) while the
context is still valid, and only then shuts rclpy down. A signal while the node is still starting
(loading its model) aborts the start with KeyboardInterrupt; a second signal ends the process at once.
"""

from __future__ import annotations

import os
import signal
import threading

from rclpy.executors import SingleThreadedExecutor

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """SIGINT and SIGTERM as a request to stop, from :meth:`install` until the process ends."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None
        self.running = False  # False while starting: a signal then aborts the start

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        if self.event.is_set():  # asked twice: stop now, as the default action would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signal_name = signal.Signals(signum).name
        self.event.set()
        if not self.running:
            raise KeyboardInterrupt(self.signal_name)


def spin_until_stopped(node, context, request: StopRequest, poll_s: float = 0.1) -> None:
    """Spin ``node`` until a stop is requested or the context is shut down elsewhere."""
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    request.running = True
    try:
        while not request.event.is_set() and context.ok():
            executor.spin_once(timeout_sec=poll_s)  # returns within poll_s: the request is seen promptly
    finally:  # still "running": a signal during the orderly stop that follows is a second request
        executor.remove_node(node)
        executor.shutdown(timeout_sec=1.0)
