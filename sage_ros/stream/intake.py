"""What happens to a decoded camera image before fusion, live or recorded: the node's rules, without ROS.

:class:`FrameIntake` checks each image against its stream (encoding and resolution: ``FormatGuard``;
stamp plausibility: ``StampGuard``, a lasting change adopted after ``adopt_after_frames``), drops
what waits for pairing when a stream's clock changes, turns RGB into BGR, and pairs by stamp
(``ApproximateTimePairer``). A frame that finds no partner while the other camera is stale goes out
alone under ``on_stale: passthrough``. The live node (``image_inputs.py``) and the bag tool
(``bags/offline.py``) both run their images through it, so recorded data is treated exactly as
live data; they differ only in what "now" is (the node's clock, or the bag's log time).
Thread-safe: the executor and the decoder threads feed one intake, and parameter changes reconfigure it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from sage_core.cameras import Camera
from sage_ros.codec.encodings import to_bgr
from sage_ros.parameters import FusionParams
from sage_ros.stream.frames import Frame
from sage_ros.stream.guards import FormatGuard, StampGuard
from sage_ros.stream.pairing import ApproximateTimePairer, Stamped
from sage_ros.stream.time_offset import TimeOffsetEstimator


class FrameIntake:
    """Guards, pairing and the passthrough decision for both cameras of one stream of images.

    ``on_pair(thermal, rgb)`` gets each pair (:class:`Stamped` items holding :class:`Frame`);
    ``on_single(camera, frame)`` a frame to publish alone (passthrough); ``is_stale(camera)`` says
    whether a camera counts as stale now; ``report_bad(source, kind, message)`` gets each rejected
    image; ``report_adopted(message)`` each change of clock, encoding or size a guard adopts.
    A pending pair whose deadline passes with no further image is published by :meth:`poll` (the live
    node calls it from a timer); in a bag each image and :meth:`finish` decide.
    """

    def __init__(self, params: FusionParams, on_pair: Callable[[Stamped, Stamped], None],
                 on_single: Callable[[Camera, Frame], None], is_stale: Callable[[Camera], bool],
                 report_bad: Callable[[str, str, str], None], report_adopted: Callable[[str], None]) -> None:
        self.params = params
        self._lock = threading.Lock()
        self._on_single, self._is_stale = on_single, is_stale
        self._report_bad, self._report_adopted = report_bad, report_adopted
        self.stamp_guard = StampGuard(params.max_stamp_jump, params.adopt_after_frames)
        self.format_guard = FormatGuard(params.adopt_after_frames)
        self.pairer = ApproximateTimePairer(params.queue_size, params.slop, on_pair,
                                            lambda camera, kind, message: report_bad(camera.label, kind, message),
                                            params.pairing_rate_bound)
        self.time_offset = TimeOffsetEstimator(params.time_offset, params.auto_time_offset)
        self.sizes: dict[Camera, tuple[int, int]] = {}  # (width, height) of each camera's latest accepted image
        self.last_stamp: dict[Camera, int] = {}

    def size_of(self, camera: Camera) -> tuple[int, int] | None:
        """(width, height) of ``camera``'s latest accepted image, or None."""
        return self.sizes.get(camera)

    @property
    def unpaired(self) -> int:
        """Messages that waited for a partner and never got one."""
        return self.pairer.unpaired

    def reconfigure(self, params: FusionParams) -> None:
        """Apply the run-time changeable parameters (slop, queue size, guard settings)."""
        with self._lock:
            self.pairer.configure(params.queue_size, params.slop)
            self.pairer.rate_bound_fraction = params.pairing_rate_bound
            self.stamp_guard.max_jump_s = params.max_stamp_jump
            self.stamp_guard.adopt_after = params.adopt_after_frames
            self.format_guard.adopt_after = params.adopt_after_frames
            if params.time_offset != self.params.time_offset:  # a known offset set at run time
                self.time_offset.applied_s = params.time_offset
            self.params = params

    def accept(self, camera: Camera, array: np.ndarray, encoding: str, header, stamp_ns: int, now_ns: int) -> bool:
        """One decoded image of ``camera`` (``encoding`` describes ``array``) with its header and stamp, at
        ``now_ns``; whether it was accepted (a rejected one went to ``report_bad``)."""
        with self._lock:
            return self._accept(camera, array, encoding, header, stamp_ns, now_ns)

    def _accept(self, camera: Camera, array: np.ndarray, encoding: str, header, stamp_ns: int, now_ns: int) -> bool:
        if not self._accepted(camera, self.format_guard.check(camera, encoding, array.shape[1], array.shape[0])):
            return False
        verdict = self.stamp_guard.check(camera, stamp_ns, now_ns)
        if not self._accepted(camera, verdict):
            return False
        self.time_offset.add(camera, stamp_ns, array)
        # Pairing sees thermal stamps moved onto the rgb camera's clock by the offset in force.
        pair_ns = stamp_ns - round(self.time_offset.applied_s * 1e9) if camera is Camera.THERMAL else stamp_ns
        if verdict.adopted:
            self.pairer.flush(camera)  # what waits was stamped by the old clock
        else:  # back from a clock adopted for a while: drop what that clock stamped ahead of us
            self.pairer.flush(camera, newer_than_ns=pair_ns + int(self.params.max_stamp_jump * 1e9))
        self.sizes[camera] = (array.shape[1], array.shape[0])
        self.last_stamp[camera] = stamp_ns
        if camera is Camera.RGB:
            array = to_bgr(array, encoding)
        frame = Frame(array, header, encoding)
        paired = self.pairer.add(camera, pair_ns, frame, now_ns)
        if not paired and self.params.on_stale == "passthrough" and self._is_stale(camera.other):
            self.pairer.withdraw(camera, pair_ns)  # out alone: it must not go out in a pair later too
            self._on_single(camera, frame)
        return True

    def poll(self, now_ns: int) -> int:
        """Publish the pending pair if its deadline has passed at ``now_ns``; returns how many pairs went out."""
        with self._lock:
            return self.pairer.expire(now_ns)

    def _accepted(self, camera: Camera, verdict) -> bool:
        if not verdict.accepted:
            self._report_bad(camera.label, verdict.kind, verdict.message)
        elif verdict.adopted:
            self._report_adopted(f"{camera.label} camera: {verdict.message}")
        return verdict.accepted

    def finish(self) -> None:
        """No more images (end of a bag): the pending pairs go out, the best among what is left; what still
        waits for a partner never gets one (counted unpaired)."""
        with self._lock:
            self.pairer.drain()
            for camera in Camera:
                self.pairer.flush(camera)
