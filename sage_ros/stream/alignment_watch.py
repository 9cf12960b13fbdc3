"""The node's background alignment check: is the configured homography still right for this rig?

Every ``period`` seconds a thread of its own measures the residual misalignment of the newest fused
pair after the configured homography (:func:`sage_core.registration.residual.measure_residual`: a
small local refinement, about 50-70 ms on one core), so neither the executor nor inference waits for
it. The node reports the residual in /diagnostics and warns above ``warn_px``. With ``auto_align``, a
residual above the threshold for ``checks`` checks in a row moves the homography towards the refined
one: half way, and at most ``max_step_px`` (640-wide rgb pixels) per update, so one bad estimate
cannot throw the picture off; blank or textureless frames are refused by the measurement and never
move it. Free of ROS.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.registration.geometry import grid_points, normalized, transform_points
from sage_core.registration.residual import measure_residual


@dataclass
class WatchStatus:
    checks: int = 0
    residual_px: float | None = None  # of the latest measured check
    reason: str = "no check yet"
    over_threshold: int = 0  # consecutive checks above warn_px
    updates: int = 0  # homography updates made by auto_align


def bounded_step(current: np.ndarray, refined: np.ndarray, thermal_size: tuple[int, int], rgb_width: int,
                 fraction: float = 0.5, max_step_px: float = 2.0) -> np.ndarray:
    """A homography ``fraction`` of the way from ``current`` to ``refined``, moving no grid point more than
    ``max_step_px`` (in pixels of a 640-wide rgb image)."""
    points = grid_points(thermal_size)
    here, there = transform_points(current, points), transform_points(refined, points)
    step = (there - here) * fraction
    limit = max_step_px * rgb_width / 640.0
    length = np.linalg.norm(step, axis=1).max()
    if length > limit:
        step *= limit / length
    matrix, _ = cv2.findHomography(points.astype(np.float64), (here + step).astype(np.float64), 0)
    return normalized(matrix)


def lower_this_threads_priority() -> bool:
    """The calling thread at the lowest CPU priority (Linux: a thread's nice value; no privileges needed), so a
    check never takes a core from frames in flight: it runs on what they leave (a check every 5 s at full
    priority took the end-to-end p99 at 1280x1024 from 87 to 109 ms on 2 cores). False where unsupported."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        return False
    return True


class AlignmentWatch:
    """Measures the newest offered pair every ``period`` s in a daemon thread; see the module docstring."""

    def __init__(self, period: float, warn_px: float, homography: np.ndarray | None, auto_align: bool = False,
                 checks: int = 3, on_update: Callable[[np.ndarray, str], None] | None = None) -> None:
        self.period, self.warn_px, self.auto_align, self.checks = period, warn_px, auto_align, checks
        self.homography = None if homography is None else normalized(np.asarray(homography, np.float64))
        self.on_update = on_update
        self.status = WatchStatus()
        self._pair: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sage_alignment_watch", daemon=True)

    def start(self) -> None:
        if self.period > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def offer(self, thermal_unit: np.ndarray, rgb_bgr: np.ndarray) -> None:
        """The newest pair (as the model saw it before alignment); cheap: keeps references only."""
        with self._lock:
            self._pair = (thermal_unit, rgb_bgr)

    def check_now(self) -> WatchStatus:
        """Measure the newest offered pair once (the thread calls this every period)."""
        with self._lock:
            pair, self._pair = self._pair, None
        if pair is None:
            return self.status
        thermal, rgb = pair
        result = measure_residual(thermal, rgb, self.homography)
        status = self.status
        status.checks += 1
        status.reason = result.reason
        if result.px is None:
            return status  # not measurable on this frame: neither a pass nor a failure
        status.residual_px = result.px
        status.over_threshold = status.over_threshold + 1 if result.px > self.warn_px else 0
        if self.auto_align and status.over_threshold >= self.checks and result.refined is not None:
            self._update(thermal.shape, rgb.shape, result.refined, result.px)
        return status

    def _update(self, thermal_shape: tuple, rgb_shape: tuple, refined: np.ndarray, px: float) -> None:
        size = (thermal_shape[1], thermal_shape[0])
        current = self.homography
        if current is None:
            current = np.diag([rgb_shape[1] / size[0], rgb_shape[0] / size[1], 1.0])
        self.homography = bounded_step(current, refined, size, rgb_shape[1])
        self.status.updates += 1
        self.status.over_threshold = 0
        if self.on_update:
            self.on_update(self.homography, f"residual {px:.2f} px for {self.checks} checks: homography moved "
                                            f"half way to the refined one (at most 2 px), update {self.status.updates}")

    def _run(self) -> None:
        lower_this_threads_priority()
        while not self._stop.wait(self.period):
            started = time.monotonic()
            try:
                self.check_now()
            except Exception as exc:  # noqa: BLE001 - a failed check must not end the watch
                self.status.reason = f"check failed: {type(exc).__name__}: {exc}"
            self._stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))
