"""The fusion node's frame path without ROS, for recorded data: what the node would publish for a bag.

The same :class:`~sage_ros.stream.intake.FrameIntake` as the node's inputs (stream guards, pairing,
RGB to BGR, the passthrough decision), the same staleness rule, the same statistics and bad-message
counts, then the node's frame path (:func:`~sage_ros.stream.frame_path.fuse_job`). Two differences,
both because nothing is live: every pair is fused (no worker that keeps only the newest job), and
"now" is the bag's log time of the message (when the recorder received it), which drives the stamp
checks and, with ``on_stale: passthrough``, when a camera counts as stale. With a rig, its geometry aligns
(``stream/rig_registration.py``), and with ``use_depth`` each pair waits for its rgb frame's depth image as in
the node (``stream/depth_pairing.py``, log time as "now").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sage_core.cameras import Camera
from sage_core.pipeline import FramePipeline
from sage_ros.bags.messages import Decoded
from sage_ros.codec.encodings import CAMERA_ENCODINGS, DEPTH_ENCODINGS, BadImage
from sage_ros.codec.header import stamp_ns
from sage_ros.parameters import FusionParams
from sage_ros.stream.depth_pairing import DepthMatcher, registration_problem
from sage_ros.stream.frame_path import FusedFrame, build_pipeline, fuse_job
from sage_ros.stream.frames import Frame, Job
from sage_ros.stream.health_rules import Staleness
from sage_ros.stream.intake import FrameIntake
from sage_ros.stream.lenses import CameraLenses
from sage_ros.stream.pairing import Stamped
from sage_ros.stream.rig_registration import RigRegistration
from sage_ros.stream.stats import FusionStats

#: How often the camera time offset is estimated again (log time), as the node's OffsetWatch does.
OFFSET_UPDATE_NS = 1_000_000_000


class OfflineFusion:
    """Feed it each camera message in log-time order (:meth:`offer`); it returns what the node would publish."""

    def __init__(self, params: FusionParams, pipeline: FramePipeline | None = None) -> None:
        self.params = params
        self.pipeline = pipeline or build_pipeline(params)
        self.stats = FusionStats()  # counts and bad messages, as the node keeps them
        self.adopted: list[str] = []  # changes of clock, encoding or size the guards adopted (the node logs them)
        self._arrivals: dict[Camera, int] = {}  # log time of each camera's latest message
        self._now_ns = 0
        self._is_stale = Staleness(self._last_arrival, lambda: self.params.stale_timeout, (lambda: self._now_ns,))
        self._is_stale.started = None  # set by the first message
        self.intake = FrameIntake(params, self._on_pair, self._on_single, self._is_stale, self.stats.bad.report,
                                  self.adopted.append)
        self.lenses = CameraLenses(params.rectify, self.stats.bad.report)  # fed by offer_info
        self.rig = RigRegistration.from_params(params)
        if self.rig:
            self.rig.offer_file_lenses(self.lenses)
        self.depth = DepthMatcher(params.slop, params.queue_size, params.stale_timeout, self._process,
                                  self.stats.bad.report, lambda: self.intake.size_of(Camera.RGB)
                                  ) if params.use_depth else None
        self._depth_problem: str | None = None  # why the depth camera_info is not the rgb camera's
        self.fuse_seconds = 0.0
        self._outputs: list[FusedFrame] = []
        self._offset_updated_ns: int | None = None  # log time of the last time-offset update (the node's: 1 s)

    def offer_info(self, camera: Camera, info) -> None:
        """A camera_info of ``camera`` from the bag (rectification and the fused camera_info follow it)."""
        self.lenses.offer(camera, info)

    def offer_depth_info(self, info) -> None:
        """The depth image's camera_info: it must describe the rgb camera's images (registered depth)."""
        self._depth_problem = registration_problem(info, self.lenses.info(Camera.RGB))
        if self._depth_problem is not None:
            self.stats.bad.report("depth", "depth_camera_info", self._depth_problem)

    def offer_depth(self, log_ns: int, decode: Callable[[tuple[str, ...], bool], Decoded]) -> list[FusedFrame]:
        """One depth message logged at ``log_ns`` (``decode(allowed, finite)`` turns it into pixels); returns the
        images the node would publish in answer (pairs that waited for it)."""
        self._advance(log_ns)
        try:
            decoded = decode(DEPTH_ENCODINGS, False)
        except BadImage as exc:
            self.stats.bad.report("depth", f"depth_{exc.kind}", str(exc))
        else:
            if self._depth_problem is None:
                self.depth.add_depth(Frame(decoded.array, decoded.header, decoded.encoding), stamp_ns(decoded.header),
                                     log_ns)
        outputs, self._outputs = self._outputs, []
        return outputs

    def _advance(self, log_ns: int) -> None:
        """Log time moves on: pairs whose depth did not come in time go (the node's poll timer)."""
        self._now_ns = log_ns
        if self.depth is not None:
            self.depth.poll(log_ns)

    def _last_arrival(self, camera: Camera) -> tuple[int] | None:
        return (self._arrivals[camera],) if camera in self._arrivals else None

    @property
    def unpaired(self) -> int:
        return self.intake.unpaired

    def offer(self, camera: Camera, log_ns: int, decode: Callable[[tuple[str, ...]], Decoded]) -> list[FusedFrame]:
        """One message of ``camera`` logged at ``log_ns``; ``decode(allowed encodings)`` turns it into pixels
        (raising BadImage). Returns the images the node would publish in answer, often none."""
        self._advance(log_ns)
        if self._is_stale.started is None:
            self._is_stale.started = (log_ns,)
        self._arrivals[camera] = log_ns  # a bad message still shows the camera is alive, as in the node
        if self._offset_updated_ns is None or log_ns - self._offset_updated_ns >= OFFSET_UPDATE_NS:
            if self._offset_updated_ns is not None:  # once a second of log time, as the node's watch
                self.intake.time_offset.update()
            self._offset_updated_ns = log_ns
        try:
            decoded = decode(CAMERA_ENCODINGS[camera])
        except BadImage as exc:
            self.stats.bad.report(camera.label, exc.kind, str(exc))
        else:
            self.intake.accept(camera, decoded.array, decoded.encoding, decoded.header, stamp_ns(decoded.header),
                               log_ns)
        outputs, self._outputs = self._outputs, []
        return outputs

    def _on_single(self, camera: Camera, frame: Frame) -> None:
        self.stats.count("passthrough")
        self._process(Job({camera: frame}))

    def _on_pair(self, thermal: Stamped, rgb: Stamped) -> None:
        self.stats.count("pairs")
        if self.depth is not None:
            self.depth.add_pair(Job.pair(thermal.item, rgb.item), rgb.stamp_ns, self._now_ns)
        else:
            self._process(Job.pair(thermal.item, rgb.item))

    def _process(self, job: Job) -> None:
        """The node's worker step, in line; a failure is counted, like the node's inference_error."""
        started = time.perf_counter()
        try:
            fused = fuse_job(self.pipeline, job, self.params.output_encoding, self.intake.size_of, self.lenses,
                             self.rig)
        except Exception as exc:  # noqa: BLE001 - one bad pair must not end a long bag, as in the node
            self.stats.failed("pair", exc)
        else:
            self._outputs.append(fused)
            self.stats.count("published")
        finally:
            self.fuse_seconds += time.perf_counter() - started

    def time_offset_summary(self) -> str:
        """The camera time offset in force and the last estimate, in words."""
        estimator = self.intake.time_offset
        estimate = estimator.last
        found = "none" if estimate.offset_s is None else f"{1000 * estimate.offset_s:+.1f} ms"
        return (f"applied {1000 * estimator.applied_s:+.1f} ms ({'auto' if estimator.follow else 'fixed'}); "
                f"estimate {found} ({estimate.reason})")

    def finish(self) -> list[FusedFrame]:
        """End of the bag: the pending pairs go out (returned, fused); what still waits for a partner never
        gets one (counted as unpaired)."""
        self.intake.finish()
        if self.depth is not None:
            self.depth.finish()
        outputs, self._outputs = self._outputs, []
        return outputs
