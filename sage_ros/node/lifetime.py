"""A node process's life (:func:`run_node`): spin until SIGINT or SIGTERM, then stop in order, publishing nothing
half-done.

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
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from sage_core.errors import ConfigError
from sage_ros.dds_profile import FASTDDS_PROFILE
from sage_ros.parameters_yaml import render_yaml

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


def own_arguments(args: list[str]) -> list[str]:
    """The program's own arguments: those before ``--ros-args``."""
    return args[1:args.index("--ros-args")] if "--ros-args" in args else args[1:]


def run_node(node_class: type, program: str, argv: list[str] | None, usage: str) -> int:
    """Start ``node_class`` (a FusionNode) and spin it until SIGINT or SIGTERM, then stop it in order.

    A bad parameter at start is one line and exit 2. ``--help`` prints ``usage`` and the parameters with their
    defaults, ``--dds-profile`` the Fast DDS profile's path (``dds_profile.py``); neither starts anything."""
    args = argv if argv is not None else sys.argv
    if any(arg in ("-h", "--help") for arg in own_arguments(args)):
        print(f"{program}: {usage.strip()}\n\nParameters (-p NAME:=VALUE, or --params-file FILE):\n{render_yaml()}")
        return 0
    if "--dds-profile" in own_arguments(args):
        print(FASTDDS_PROFILE)
        return 0
    request = StopRequest()
    request.install()
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)  # signals are ours (above)
        node = node_class()
    except ConfigError as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    except KeyboardInterrupt:  # stopped while starting; the node cleaned up after itself
        rclpy.try_shutdown()
        return 0
    try:
        spin_until_stopped(node, rclpy.get_default_context(), request)
    except ExternalShutdownException:
        pass
    finally:
        node.cleanup()  # inputs off, the frame in hand published or dropped, while the context is still valid
        node.destroy_node()
        rclpy.try_shutdown()
    if request.signal_name:
        print(f"{program}: stopped on {request.signal_name}", file=sys.stderr)
    return 0
