"""``fusion_node``: synchronised thermal + RGB images in, one fused image out.

Topics (relative, remappable)::

    in:  thermal/image, rgb/image            sensor_msgs/Image
         thermal/camera_info, rgb/camera_info (optional) sensor_msgs/CameraInfo
    out: fused/image, fused/camera_info      (stamp and frame_id of the reference camera)
         /diagnostics                        diagnostic_msgs/DiagnosticArray

The subscription callbacks only convert, validate and pair (cheap). Inference
runs in a worker thread that always takes the newest complete pair and counts
the pairs it had to drop, so a slow model never stalls the executor and latency
never grows with the queue. Parameters: see ``sage_ros/parameters.py``.

    python -m sage_ros.fusion_node --ros-args -p model_file_path:=model.onnx -r thermal/image:=/boson/image_raw
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from sage_core.alignment import AlignmentConfig, Aligner, transform_intrinsics
from sage_core.color import gray_to_uint8
from sage_core.errors import SageError
from sage_core.fuser import Fuser
from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig
from sage_ros.diagnostics import FusionStats, status
from sage_ros.image_conversion import (RGB_ENCODINGS, THERMAL_ENCODINGS, BadImage, array_to_image_fields,
                                       image_to_array, to_bgr)
from sage_ros.parameters import ConfigError, FusionParams, apply_changes, declare_parameters
from sage_ros.sync import RGB, THERMAL, ApproximateTimePairer, Stamped

#: Seconds between two log lines about the same kind of bad message.
BAD_MESSAGE_LOG_PERIOD = 10.0


@dataclass
class Frame:
    """A validated input image: the array (thermal raw, rgb as BGR), and its message header."""

    array: np.ndarray
    header: object
    encoding: str


@dataclass
class Job:
    thermal: Frame | None
    rgb: Frame | None


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class InferenceWorker(threading.Thread):
    """Holds at most one pending job; a newer job replaces it and the replaced one is counted as dropped."""

    def __init__(self, process, on_drop) -> None:
        super().__init__(name="sage_fusion_inference", daemon=True)
        self._process, self._on_drop = process, on_drop
        self._pending: Job | None = None
        self._wake = threading.Condition()
        self._stopping = False

    def submit(self, job: Job) -> None:
        with self._wake:
            if self._pending is not None:
                self._on_drop()
            self._pending = job
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self.join(timeout=5.0)

    def run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job, self._pending = self._pending, None
            self._process(job)


class FusionNode(Node):
    """Fuses time-paired thermal and RGB images with a sage_core model."""

    def __init__(self, node_name: str = "sage_fusion", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.worker: InferenceWorker | None = None
        try:
            self._setup()
        except BaseException:
            super().destroy_node()  # leave nothing registered in the context
            raise

    def _setup(self) -> None:
        self.params: FusionParams = declare_parameters(self)
        p = self.params
        self.stats = FusionStats()
        self._last_bad_log: dict[str, float] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._camera_info: dict[str, CameraInfo] = {}
        self._stale: dict[str, bool] = {"thermal": False, "rgb": False}
        self._warned_no_data: set[str] = set()
        self._started = time.monotonic()
        self._state_lock = threading.Lock()  # guards normaliser and params used by the worker

        try:
            self.fuser = Fuser.from_weights(p.model_file_path or None, device=p.device, backend=p.backend,
                                            fp16=p.enable_fp16, cache_dir=self._engine_folder(p.engine_file_path),
                                            force_rebuild=p.force_engine_update)
            self.aligner = Aligner(AlignmentConfig(p.reference_camera, p.output_width, p.output_height,
                                                   p.homography_matrix, p.crop_to_valid))
            self.normalizer = ThermalNormalizer(self._normalizer_config(p))
        except SageError as exc:
            raise ConfigError(str(exc)) from None
        for decision in self.fuser.decisions:
            self.get_logger().info(f"model: {decision}")
        if p.warmup:
            self.fuser.warmup()
        self.pairer = ApproximateTimePairer(p.queue_size, p.slop, self._on_pair)

        sensor_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth,
            reliability=ReliabilityPolicy.BEST_EFFORT if p.qos_reliability == "best_effort"
            else ReliabilityPolicy.RELIABLE)
        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth,
                                reliability=ReliabilityPolicy.RELIABLE)
        self.subscriptions_by_stream = {
            "thermal": self.create_subscription(Image, "thermal/image", self._on_thermal, sensor_qos),
            "rgb": self.create_subscription(Image, "rgb/image", self._on_rgb, sensor_qos),
        }
        self.create_subscription(CameraInfo, "thermal/camera_info",
                                 lambda m: self._camera_info.__setitem__("thermal", m), sensor_qos)
        self.create_subscription(CameraInfo, "rgb/camera_info",
                                 lambda m: self._camera_info.__setitem__("rgb", m), sensor_qos)
        self.image_pub = self.create_publisher(Image, "fused/image", output_qos)
        self.info_pub = self.create_publisher(CameraInfo, "fused/camera_info", output_qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self.worker = InferenceWorker(self._process, lambda: self.stats.count("dropped_pairs"))
        self.worker.start()
        self.create_timer(p.diagnostics_period, self._publish_diagnostics)
        self.create_timer(0.25, self._watchdog)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f"fusing {self.resolve_topic_name('thermal/image')} + {self.resolve_topic_name('rgb/image')} -> "
            f"{self.resolve_topic_name('fused/image')} with {self.fuser.description}; "
            f"input QoS {p.qos_reliability}, slop {p.slop} s, reference camera {p.reference_camera}")

    # ----- parameters -------------------------------------------------------------------------

    @staticmethod
    def _engine_folder(engine_file_path: str) -> str | None:
        """Isaac ROS users pass an engine *file*; the cache keeps one file per key, so use its folder."""
        if not engine_file_path:
            return None
        path = Path(engine_file_path)
        return str(path.parent if path.suffix else path)

    @staticmethod
    def _normalizer_config(p: FusionParams) -> ThermalNormalizerConfig:
        return ThermalNormalizerConfig(p.thermal_normalization, p.thermal_low_percentile, p.thermal_high_percentile,
                                       p.thermal_fixed_min, p.thermal_fixed_max, p.thermal_range_smoothing)

    def _on_set_parameters(self, changes) -> SetParametersResult:
        try:
            new = apply_changes(self.params, changes)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._state_lock:
            if self._normalizer_config(new) != self._normalizer_config(self.params):
                self.normalizer.reconfigure(self._normalizer_config(new))
            self.pairer.configure(new.queue_size, new.slop)
            self.params = new
        return SetParametersResult(successful=True)

    # ----- input ------------------------------------------------------------------------------

    def _bad(self, stream: str, kind: str, message: str) -> None:
        self.stats.bad_message(kind)
        now = time.monotonic()
        if now - self._last_bad_log.get(kind, -1e9) >= BAD_MESSAGE_LOG_PERIOD:
            self._last_bad_log[kind] = now
            self.get_logger().warning(f"dropping bad {stream} message ({kind}): {message} "
                                      f"[logged at most every {BAD_MESSAGE_LOG_PERIOD:.0f} s per kind]")

    def _convert(self, stream: str, msg: Image) -> Frame | None:
        try:
            array = image_to_array(msg, THERMAL_ENCODINGS if stream == "thermal" else RGB_ENCODINGS)
        except BadImage as exc:
            self._bad(stream, exc.kind, str(exc))
            return None
        size = (array.shape[1], array.shape[0])
        first = self._sizes.setdefault(stream, size)
        if size != first:
            self._bad(stream, "size_change", f"image is {size[0]}x{size[1]} but the stream started at "
                                             f"{first[0]}x{first[1]}; restart the node to change resolution")
            return None
        if stream == "rgb":
            array = to_bgr(array, msg.encoding)
        return Frame(array, msg.header, msg.encoding)

    def _on_thermal(self, msg: Image) -> None:
        self._on_image("thermal", THERMAL, msg)

    def _on_rgb(self, msg: Image) -> None:
        self._on_image("rgb", RGB, msg)

    def _on_image(self, name: str, stream: int, msg: Image) -> None:
        self.stats.arrived(name)
        frame = self._convert(name, msg)
        if frame is None:
            return
        paired = self.pairer.add(stream, stamp_ns(msg.header), frame)
        other = "rgb" if name == "thermal" else "thermal"
        if not paired and self.params.on_stale == "passthrough" and self._is_stale(other):
            self.stats.count("passthrough")
            self.worker.submit(Job(frame, None) if name == "thermal" else Job(None, frame))

    def _on_pair(self, thermal: Stamped, rgb: Stamped) -> None:
        self.stats.record(pair_dt_ms=abs(thermal.stamp_ns - rgb.stamp_ns) / 1e6)
        self.worker.submit(Job(thermal.item, rgb.item))

    # ----- inference (worker thread) ----------------------------------------------------------

    def _thermal_unit(self, frame: Frame) -> np.ndarray:
        """Raw thermal -> what the model takes: mono8 as is, 16-bit and float through the normaliser."""
        if frame.array.dtype == np.uint8:
            return frame.array
        with self._state_lock:
            return self.normalizer(frame.array)

    def _process(self, job: Job) -> None:
        try:
            self._fuse_and_publish(job)
        except Exception as exc:  # keep the node alive whatever one frame does
            self._bad("pair", "inference_error", f"{type(exc).__name__}: {exc}")

    def _fuse_and_publish(self, job: Job) -> None:
        p = self.params
        if job.thermal is not None and job.rgb is not None:
            reference = job.rgb if p.reference_camera == "rgb" else job.thermal
            started = time.perf_counter()
            thermal, rgb = self.aligner(self._thermal_unit(job.thermal), job.rgb.array)
            out = self.fuser.fuse_gray(thermal, rgb) if p.output_encoding == "mono8" else self.fuser.fuse(thermal, rgb)
            self.stats.record(inference_ms=1000 * (time.perf_counter() - started))
        else:
            reference, out = self._passthrough(job)
        out = self._to_output_encoding(out, p.output_encoding)
        self.image_pub.publish(Image(header=reference.header, **array_to_image_fields(out, p.output_encoding)))
        self._publish_camera_info(reference, job, out.shape)
        latency = (self.get_clock().now() - Time.from_msg(reference.header.stamp)).nanoseconds / 1e6
        self.stats.record(latency_ms=latency)
        self.stats.count("published")
        self.stats.arrived("fused")

    def _passthrough(self, job: Job) -> tuple[Frame, np.ndarray]:
        """The live camera's image on the output grid, when its partner is stale."""
        name, live = ("thermal", job.thermal) if job.thermal is not None else ("rgb", job.rgb)
        other = "rgb" if name == "thermal" else "thermal"
        image = self._thermal_unit(live) if name == "thermal" else live.array
        image = self.aligner.align_one(image, name, self._sizes.get(other, self._sizes[name]))
        return live, gray_to_uint8(image) if image.dtype != np.uint8 else image

    @staticmethod
    def _to_output_encoding(image: np.ndarray, encoding: str) -> np.ndarray:
        """uint8 gray or BGR -> the array layout of ``encoding`` (mono8, bgr8, rgb8)."""
        if encoding == "mono8":
            return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return np.ascontiguousarray(image[..., ::-1]) if encoding == "rgb8" else image

    def _publish_camera_info(self, reference: Frame, job: Job, shape: tuple) -> None:
        camera = "rgb" if reference is job.rgb else "thermal"
        info = self._camera_info.get(camera)
        if info is None or (job.thermal is None or job.rgb is None):
            return
        plan = self.aligner.plan((job.thermal.array.shape[1], job.thermal.array.shape[0]),
                                 (job.rgb.array.shape[1], job.rgb.array.shape[0]))
        k, p = transform_intrinsics(list(info.k), list(info.p), plan)
        out = CameraInfo(header=reference.header, height=shape[0], width=shape[1],
                         distortion_model=info.distortion_model, d=list(info.d), r=list(info.r), k=k, p=p,
                         binning_x=info.binning_x, binning_y=info.binning_y)
        self.info_pub.publish(out)

    # ----- health -----------------------------------------------------------------------------

    def _is_stale(self, stream: str) -> bool:
        last = self.stats.last_arrival(stream)
        reference_time = last if last is not None else self._started
        return time.monotonic() - reference_time > self.params.stale_timeout

    def _watchdog(self) -> None:
        now = time.monotonic()
        for stream, subscription in self.subscriptions_by_stream.items():
            stale = self._is_stale(stream)
            if stale != self._stale[stream]:
                self._stale[stream] = stale
                if stale:
                    self.get_logger().warning(
                        f"{stream} camera stale: nothing on {subscription.topic_name} for "
                        f"{self.params.stale_timeout:.2f} s; policy on_stale={self.params.on_stale}")
                else:
                    self.get_logger().info(f"{stream} camera back on {subscription.topic_name}")
            publishers = subscription.get_publisher_count()
            waited = now - self._started
            if (self.stats.last_arrival(stream) is None and publishers > 0 and waited > self.params.no_data_warning
                    and stream not in self._warned_no_data):
                self._warned_no_data.add(stream)
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

    def _publish_diagnostics(self) -> None:
        problems = [f"{s} stale" for s in ("thermal", "rgb") if self._is_stale(s)]
        problems += [f"{s}: publishers but no data (QoS?)" for s in sorted(self._warned_no_data)
                     if self.stats.last_arrival(s) is None]
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        message = "; ".join(problems) if problems else f"fusing with {self.fuser.name} on {self.fuser.device}"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status(f"{self.get_name()}: fusion", self.get_fully_qualified_name(), level, message,
                               self.stats.key_values(self.pairer.unpaired))]
        self.diag_pub.publish(array)

    def destroy_node(self) -> None:
        if self.worker is not None:
            self.worker.stop()
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
