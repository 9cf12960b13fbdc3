"""``fusion_node``: synchronised thermal + RGB images in, one fused image out.

Topics (relative, remappable)::

    in:  thermal/image, rgb/image            sensor_msgs/Image
         thermal/camera_info, rgb/camera_info (optional) sensor_msgs/CameraInfo
    out: fused/image, fused/camera_info      (stamp and frame_id of the reference camera)
         /diagnostics                        diagnostic_msgs/DiagnosticArray

The subscription callbacks only convert, validate and pair (cheap); the frames go to the inference
worker (``worker.py``), which runs the library's :class:`~sage_core.pipeline.FramePipeline` and
publishes. Parameters: ``parameters.py``; health rules: ``diagnostics.py``.

    python -m sage_ros.fusion_node --ros-args -p model_file_path:=model.onnx -r thermal/image:=/boson/image_raw
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from sage_core.alignment import Aligner, transform_intrinsics
from sage_core.cameras import Camera
from sage_core.errors import ConfigError, SageError
from sage_core.fuser import Fuser
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer
from sage_ros.alignment_watch import AlignmentWatch
from sage_ros.diagnostics import FusionStats, assess_health, status
from sage_ros.image_conversion import (RGB_ENCODINGS, THERMAL_ENCODINGS, BadImage, array_to_image_fields,
                                       image_to_array, to_bgr, to_output_encoding)
from sage_ros.input_guards import FormatGuard, StampGuard
from sage_ros.parameters import SPECS, FusionParams, ParameterError, declare_parameters, from_values
from sage_ros.sync import ApproximateTimePairer, Stamped
from sage_ros.worker import Frame, InferenceWorker, Job

#: Seconds between two log lines about the same kind of bad message from the same camera.
BAD_MESSAGE_LOG_PERIOD = 10.0
#: End-to-end latencies outside this range (s) come from unsynchronised clocks or replayed stamps, not from us.
PLAUSIBLE_LATENCY_S = (-1.0, 60.0)
ENCODINGS = {Camera.THERMAL: THERMAL_ENCODINGS, Camera.RGB: RGB_ENCODINGS}


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class FusionNode(Node):
    """Fuses time-paired thermal and RGB images with a sage_core model."""

    def __init__(self, node_name: str = "sage_fusion", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.worker: InferenceWorker | None = None
        self.alignment_watch: AlignmentWatch | None = None
        try:
            self._setup()
        except BaseException:
            super().destroy_node()  # leave nothing registered in the context
            raise

    def _setup(self) -> None:
        self.params: FusionParams = declare_parameters(self)
        p = self.params
        if p.engine_file_path:
            self.get_logger().warning(f"parameter engine_file_path is deprecated: engines are cached one per key in "
                                      f"a folder; using {p.engine_cache_folder} (set engine_cache_dir instead)")
        self.stats = FusionStats()
        self._last_bad_log: dict[tuple[str, str], float] = {}
        self._sizes: dict[Camera, tuple[int, int]] = {}
        self._camera_info: dict[Camera, CameraInfo] = {}
        self._stale = {camera: False for camera in Camera}
        self._warned_no_data: set[Camera] = set()
        self._publishers_seen: dict[Camera, float] = {}
        self._last_stamp: dict[Camera, int] = {}
        self._started = time.monotonic()
        self.stamp_guard = StampGuard(p.max_stamp_jump, p.adopt_after_frames)
        self.format_guard = FormatGuard(p.adopt_after_frames)
        try:
            self.pipeline = FramePipeline(Fuser.from_options(p.inference_options()),
                                          ThermalNormalizer(p.thermal_config()), Aligner(p.alignment_config()))
        except SageError as exc:
            raise ParameterError(str(exc)) from None
        for decision in self.fuser.decisions:
            self.get_logger().info(f"model: {decision}")
        if p.warmup:
            self.fuser.warmup()
        self.pairer = ApproximateTimePairer(p.queue_size, p.slop, self._on_pair)
        self._create_topics(p)
        self.worker = InferenceWorker(self._process, lambda: self.stats.count("dropped_pairs"))
        self.worker.start()
        self.alignment_watch = AlignmentWatch(p.alignment_check_period, p.alignment_warn_px,
                                              np.reshape(p.homography_matrix, (3, 3)) if p.homography_matrix else None,
                                              p.auto_align, p.auto_align_checks, self._on_homography_update)
        self.alignment_watch.start()
        self.create_timer(p.diagnostics_period, self._publish_diagnostics)
        self.create_timer(0.25, self._watchdog)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f"fusing {self.resolve_topic_name('thermal/image')} + {self.resolve_topic_name('rgb/image')} -> "
            f"{self.resolve_topic_name('fused/image')} with {self.fuser.description}; "
            f"input QoS {p.qos_reliability}, slop {p.slop} s, reference camera {p.reference_camera}")

    @property
    def fuser(self) -> Fuser:
        return self.pipeline.fuser

    def _create_topics(self, p: FusionParams) -> None:
        reliability = (ReliabilityPolicy.BEST_EFFORT if p.qos_reliability == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth, reliability=reliability)
        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth,
                                reliability=ReliabilityPolicy.RELIABLE)
        self.image_subscriptions = {}
        for camera in Camera:
            self.image_subscriptions[camera] = self.create_subscription(
                Image, f"{camera.label}/image", lambda msg, c=camera: self._on_image(c, msg), sensor_qos)
            self.create_subscription(CameraInfo, f"{camera.label}/camera_info",
                                     lambda msg, c=camera: self._camera_info.__setitem__(c, msg), sensor_qos)
        self.image_pub = self.create_publisher(Image, "fused/image", output_qos)
        self.info_pub = self.create_publisher(CameraInfo, "fused/camera_info", output_qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _on_set_parameters(self, changes) -> SetParametersResult:
        """Validate and apply run-time changes; never raises (a refusal carries the reason)."""
        try:
            new = from_values({c.name: c.value for c in changes if c.name in SPECS}, base=self.params)
            self.pipeline.reconfigure_thermal(new.thermal_config())
            self.pairer.configure(new.queue_size, new.slop)
            self.stamp_guard.max_jump_s, self.stamp_guard.adopt_after = new.max_stamp_jump, new.adopt_after_frames
            self.format_guard.adopt_after = new.adopt_after_frames
            self.alignment_watch.warn_px = new.alignment_warn_px
        except Exception as exc:  # noqa: BLE001 - a parameter callback must answer, not raise
            reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            return SetParametersResult(successful=False, reason=reason)
        self.params = new
        return SetParametersResult(successful=True)

    # ----- input (executor threads) -----------------------------------------------------------

    def _bad(self, source: str, kind: str, message: str) -> None:
        self.stats.bad_message(kind)
        now = time.monotonic()
        if now - self._last_bad_log.get((source, kind), -1e9) >= BAD_MESSAGE_LOG_PERIOD:
            self._last_bad_log[(source, kind)] = now
            self.get_logger().warning(f"dropping bad {source} message ({kind}): {message} "
                                      f"[logged at most every {BAD_MESSAGE_LOG_PERIOD:.0f} s per camera and kind]")

    def _convert(self, camera: Camera, msg: Image) -> Frame | None:
        """The message as a validated Frame, or None (counted and logged) when it does not fit its stream."""
        try:
            array = image_to_array(msg, ENCODINGS[camera])
        except BadImage as exc:
            self._bad(camera.label, exc.kind, str(exc))
            return None
        verdict = self.format_guard.check(camera, msg.encoding, array.shape[1], array.shape[0])
        if not self._accepted(camera, verdict):
            return None
        stamp = stamp_ns(msg.header)
        verdict = self.stamp_guard.check(camera, stamp, time.monotonic_ns())
        if not self._accepted(camera, verdict):
            return None
        if verdict.adopted:
            self.pairer.flush(camera)  # what waits was stamped by the old clock
        else:  # back from a clock adopted for a while: drop what that clock stamped ahead of us
            self.pairer.flush(camera, newer_than_ns=stamp + int(self.params.max_stamp_jump * 1e9))
        self._sizes[camera] = (array.shape[1], array.shape[0])
        self._last_stamp[camera] = stamp
        if camera is Camera.RGB:
            array = to_bgr(array, msg.encoding)
        return Frame(array, msg.header, msg.encoding)

    def _accepted(self, camera: Camera, verdict) -> bool:
        if not verdict.accepted:
            self._bad(camera.label, verdict.kind, verdict.message)
        elif verdict.adopted:
            self.get_logger().warning(f"{camera.label} camera: {verdict.message}")
        return verdict.accepted

    def _on_image(self, camera: Camera, msg: Image) -> None:
        self.stats.arrived(camera.label)
        frame = self._convert(camera, msg)
        if frame is None:
            return
        paired = self.pairer.add(camera, self._last_stamp[camera], frame)
        if not paired and self.params.on_stale == "passthrough" and self._is_stale(camera.other):
            self.stats.count("passthrough")
            self.worker.submit(Job({camera: frame}))

    def _on_pair(self, thermal: Stamped, rgb: Stamped) -> None:
        self.stats.record(pair_dt_ms=abs(thermal.stamp_ns - rgb.stamp_ns) / 1e6)
        self.worker.submit(Job.pair(thermal.item, rgb.item))

    # ----- inference and output (worker thread) -----------------------------------------------

    def _process(self, job: Job) -> None:
        try:
            self._fuse_and_publish(job)
        except Exception as exc:  # noqa: BLE001 - keep the node alive whatever one frame does
            text = f"{type(exc).__name__}: {exc}"
            self.stats.outcome(text)
            self._bad("pair", "inference_error", text)
        else:
            self.stats.outcome(None)

    def _fuse_and_publish(self, job: Job) -> None:
        p = self.params
        if job.is_pair:
            reference = job.frames[self.pipeline.reference]
            started = time.perf_counter()
            out = self.pipeline.fuse(job.frames[Camera.THERMAL].array, job.frames[Camera.RGB].array,
                                     gray=p.output_encoding == "mono8")
            self.stats.record(inference_ms=1000 * (time.perf_counter() - started))
            self.alignment_watch.offer(job.frames[Camera.THERMAL].array, job.frames[Camera.RGB].array)
        else:
            ((camera, reference),) = job.frames.items()
            out = self.pipeline.passthrough(camera, reference.array, self._sizes.get(camera.other, reference.size))
        out = to_output_encoding(out, p.output_encoding)
        self.image_pub.publish(Image(header=reference.header, **array_to_image_fields(out, p.output_encoding)))
        if job.is_pair:
            self._publish_camera_info(job, reference, out.shape)
        latency = (self.get_clock().now() - Time.from_msg(reference.header.stamp)).nanoseconds / 1e9
        if PLAUSIBLE_LATENCY_S[0] <= latency <= PLAUSIBLE_LATENCY_S[1]:
            self.stats.record(latency_ms=1000 * latency)
        self.stats.count("published")
        self.stats.arrived("fused")

    def _publish_camera_info(self, job: Job, reference: Frame, shape: tuple) -> None:
        info = self._camera_info.get(self.pipeline.reference)
        if info is None:
            return
        plan = self.pipeline.aligner.plan(job.frames[Camera.THERMAL].size, job.frames[Camera.RGB].size)
        k, p = transform_intrinsics(list(info.k), list(info.p), plan)
        self.info_pub.publish(CameraInfo(header=reference.header, height=shape[0], width=shape[1],
                                         distortion_model=info.distortion_model, d=list(info.d), r=list(info.r),
                                         k=k, p=p, binning_x=info.binning_x, binning_y=info.binning_y))

    # ----- health (timers) --------------------------------------------------------------------

    def _is_stale(self, camera: Camera) -> bool:
        last = self.stats.last_arrival(camera.label)
        reference_time = last if last is not None else self._started
        return time.monotonic() - reference_time > self.params.stale_timeout

    def _watchdog(self) -> None:
        for camera, subscription in self.image_subscriptions.items():
            stale = self._is_stale(camera)
            if stale != self._stale[camera]:
                self._stale[camera] = stale
                if stale:
                    self.get_logger().warning(
                        f"{camera.label} camera stale: nothing on {subscription.topic_name} for "
                        f"{self.params.stale_timeout:.2f} s; policy on_stale={self.params.on_stale}")
                else:
                    self.get_logger().info(f"{camera.label} camera back on {subscription.topic_name}")
            self._check_no_data(camera, subscription)

    def _check_no_data(self, camera: Camera, subscription) -> None:
        """Warn once when a topic has publishers but nothing arrives: say whether QoS or transport is to blame."""
        publishers = subscription.get_publisher_count()
        if publishers == 0 or self.stats.last_arrival(camera.label) is not None:
            self._publishers_seen.pop(camera, None)
            return
        # Count from when a publisher appeared, not from our start: a camera started later is not a fault.
        waited = time.monotonic() - self._publishers_seen.setdefault(camera, time.monotonic())
        if waited <= self.params.no_data_warning or camera in self._warned_no_data:
            return
        self._warned_no_data.add(camera)
        offered = {str(info.qos_profile.reliability.name).lower()
                   for info in self.get_publishers_info_by_topic(subscription.topic_name)}
        if self.params.qos_reliability == "reliable" and "best_effort" in offered:
            cause = ("QoS mismatch: this subscription is reliable, a publisher offers best_effort; "
                     "set qos_reliability:=best_effort")
        else:
            cause = ("QoS is compatible, so the transport is losing the messages: large images over "
                     "Fast DDS's default 512 KB shared-memory segments are dropped; use a profile with "
                     "larger segments (sage_ros/fastdds_loopback.xml) or reliable QoS on both sides")
        self.get_logger().warning(
            f"{subscription.topic_name} has {publishers} publisher(s) (offering "
            f"{', '.join(sorted(offered)) or 'unknown'}) but nothing arrived in {waited:.1f} s. {cause}")

    def _starved(self) -> str | None:
        """Why nothing was published for stale_timeout although both cameras are live, or None."""
        now, timeout = time.monotonic(), self.params.stale_timeout
        last_output = self.stats.last_arrival("fused") or self._started
        if now - last_output <= timeout or any(self._is_stale(camera) for camera in Camera):
            return None
        if len(self._last_stamp) < 2:
            return f"both cameras live but nothing fused for {now - last_output:.1f} s: every message was rejected"
        gap = abs(self._last_stamp[Camera.THERMAL] - self._last_stamp[Camera.RGB]) / 1e9
        return (f"both cameras live but nothing fused for {now - last_output:.1f} s: their latest stamps are "
                f"{gap:.3f} s apart (slop {self.params.slop} s)")

    def _on_homography_update(self, homography: np.ndarray, reason: str) -> None:
        """auto_align moved the homography (watch thread): the next frames use it; the parameter stays as set."""
        config = dataclasses.replace(self.params.alignment_config(), homography=[float(v) for v in homography.ravel()])
        self.pipeline.aligner = Aligner(config)
        self.get_logger().warning(f"auto_align: {reason}; now {np.round(homography.ravel(), 5).tolist()}")

    def _alignment(self) -> tuple[list[tuple[str, str]], str | None]:
        """Diagnostics key-values of the alignment watch, and a warning when the residual is too large."""
        watch = self.alignment_watch.status
        px = watch.residual_px
        items = [("alignment residual (px, 640-wide)", "" if px is None else f"{px:.2f}"),
                 ("alignment check", watch.reason), ("alignment updates", str(watch.updates))]
        warning = None
        if px is not None and px > self.params.alignment_warn_px:
            warning = f"misaligned: residual {px:.1f} px > alignment_warn_px {self.params.alignment_warn_px:g}"
        return items, warning

    def _publish_diagnostics(self) -> None:
        stale = [camera.label for camera in Camera if self._is_stale(camera)]
        silent = [camera.label for camera in sorted(self._warned_no_data)
                  if self.stats.last_arrival(camera.label) is None]
        alignment_items, misaligned = self._alignment()
        level, message = assess_health(self.stats, stale, silent, f"{self.fuser.name} on {self.fuser.device}",
                                       self._starved(), misaligned)
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status(f"{self.get_name()}: fusion", self.get_fully_qualified_name(), level, message,
                               self.stats.key_values(self.pairer.unpaired, alignment_items))]
        self.diag_pub.publish(array)

    def destroy_node(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.alignment_watch is not None:
            self.alignment_watch.stop()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    try:
        node = FusionNode()
    except ConfigError as exc:
        print(f"fusion_node: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
