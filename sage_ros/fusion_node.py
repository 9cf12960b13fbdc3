"""``fusion_node``: synchronised thermal + RGB images in, one fused image out.

Topics (relative, remappable)::

    in:  thermal/image, rgb/image            sensor_msgs/Image (transport raw, the default)
         thermal/image/compressed, rgb/image/compressed   sensor_msgs/CompressedImage (transport compressed)
         thermal/camera_info, rgb/camera_info (optional) sensor_msgs/CameraInfo
         rgb/depth, rgb/camera_info beside it (use_depth) a depth image registered to rgb (node/depth_input.py)
    out: fused/image, fused/camera_info      (stamp and frame_id of the reference camera)
         fused/image/compressed              JPEG, encoded only while somebody subscribes
         detection/image (+ /compressed, detection/camera_info)   the same pairs fused for machines
                                             (detection_stream), fused only while somebody subscribes
         /diagnostics                        diagnostic_msgs/DiagnosticArray

The input callbacks only convert (or hand compressed images to a decoder thread), validate and pair
(``node/image_inputs.py``, ``stream/intake.py``); the jobs go to the inference worker
(``stream/worker.py``), which runs the frame path the bag tool runs too (``stream/frame_path.py``) and
publishes (``node/fused_outputs.py``). While nobody subscribes to a fused output, nothing is converted
or fused (``lazy``, ``node/demand.py``). Parameters: ``parameters.py``; watchdog and /diagnostics:
``node/health_monitor.py``.

The node's life has the stages of a managed node, run back to back here: :meth:`configure` (read
and validate parameters, create publishers, load the model: build or load its engine, warm up),
:meth:`activate` (subscribe, start the worker),
:meth:`deactivate` (unsubscribe, keep the model), :meth:`cleanup` (free the model). The managed
variant (``managed_fusion_node.py``) runs them on lifecycle transitions instead.

    python -m sage_ros.fusion_node --ros-args -p model_file_path:=model.onnx -r thermal/image:=/boson/image_raw
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from sage_core.alignment import Aligner
from sage_core.cameras import Camera
from sage_core.errors import ConfigError, SageError
from sage_core.fuser import Fuser
from sage_core.pipeline import FramePipeline
from sage_ros.codec.camera_info import fused_camera_info_fields
from sage_ros.codec.header import stamp_ns
from sage_ros.node.demand import Demand
from sage_ros.node.depth_input import DepthInput
from sage_ros.node.fused_outputs import FusedOutputs
from sage_ros.node.health_monitor import HealthMonitor
from sage_ros.node.image_inputs import ImageInputs
from sage_ros.node.lifetime import run_node
from sage_ros.node.ros_parameters import declare_parameters, read_parameters
from sage_ros.parameters import SPECS, FusionParams, ParameterError, from_values
from sage_ros.stream.alignment_watch import AlignmentWatch
from sage_ros.stream.frame_path import FusedFrame, build_pipeline, fuse_job, inference_workers, machines_fuser
from sage_ros.stream.frames import Frame, Job
from sage_ros.stream.health_rules import Staleness
from sage_ros.stream.intake import FrameIntake
from sage_ros.stream.lenses import CameraLenses
from sage_ros.stream.memory import keep_freed_memory
from sage_ros.stream.pairing import Stamped
from sage_ros.stream.rig_registration import RigRegistration
from sage_ros.stream.stats import FusionStats
from sage_ros.stream.time_offset import OffsetWatch
from sage_ros.stream.worker import InferenceWorker
from sage_ros.topic_names import DETECTION_IMAGE, DIAGNOSTICS

#: How often a pending pair's decision deadline is checked (the deadline itself is a period plus slop).
PAIR_DEADLINE_POLL_S = 0.02
#: End-to-end latencies outside this range (s) come from unsynchronised clocks or replayed stamps, not from us.
PLAUSIBLE_LATENCY_S = (-1.0, 60.0)


class FusionNode(Node):
    """Fuses time-paired thermal and RGB images with a sage_core model."""

    #: Whether ROS itself refuses changes to read-only parameters (a managed node takes them while unconfigured).
    LOCKS_READ_ONLY = True

    def __init__(self, node_name: str = "sage_fusion", *, autostart: bool = True, **kwargs) -> None:
        """``autostart``: configure and activate now (the plain node); False leaves it to a lifecycle."""
        super().__init__(node_name, **kwargs)
        # configure: parameters, statistics, publishers
        self.params: FusionParams | None = None
        self.stats: FusionStats | None = None
        self.outputs: FusedOutputs | None = None
        self.machine_outputs: FusedOutputs | None = None  # detection/image (detection_stream)
        self.diagnostics_pub = None
        self.rig: RigRegistration | None = None  # a rig's geometry registers the cameras (rig_file, rig_translation)
        # load_model: the pipeline, and how many frames it fuses at once
        self.pipeline: FramePipeline | None = None
        self.workers = 1
        # activate: what runs while active
        self.demand: Demand | None = None
        self.intake: FrameIntake | None = None
        self.lenses: CameraLenses | None = None
        self.inputs: ImageInputs | None = None
        self.worker: InferenceWorker | None = None
        self.alignment_watch: AlignmentWatch | None = None
        self.offset_watch: OffsetWatch | None = None
        self.health: HealthMonitor | None = None
        self.depth_input: DepthInput | None = None  # use_depth: the rgb frames' depth images
        self._timers = []
        try:
            declare_parameters(self, lock_read_only=self.LOCKS_READ_ONLY)
            self.add_on_set_parameters_callback(self._on_set_parameters)
            if autostart:
                self.configure()
                self.activate()
        except BaseException:
            self.cleanup()
            super().destroy_node()  # leave nothing registered in the context
            raise

    # ----- stages -------------------------------------------------------------------------------

    def configure(self) -> None:
        """Read and validate the parameters, create the publishers and load the model (the slow part: an engine
        build); ParameterError says what is wrong."""
        p = read_parameters(self)
        self.rig = RigRegistration.from_params(p)  # reads the rig file: a ParameterError says what is wrong
        self.params = p
        if p.engine_file_path:
            self.get_logger().warning(f"parameter engine_file_path is deprecated: engines are cached one per key in "
                                      f"a folder; using {p.engine_cache_folder} (set engine_cache_dir instead)")
        # One clock: the node's (ROS time; /clock under use_sim_time) for stamps, rates and latency.
        self.stats = FusionStats(log_bad=self.get_logger().warning, clock=self._now_ns)
        self.outputs = FusedOutputs(self._create_output_publisher, self.resolve_topic_name, p.qos_depth)
        if p.detection_stream:
            self.machine_outputs = FusedOutputs(self._create_output_publisher, self.resolve_topic_name, p.qos_depth,
                                                DETECTION_IMAGE)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self.load_model()

    def load_model(self) -> None:
        """Build the model and its backend (once: a deactivated node keeps it) and warm it up."""
        if self.pipeline is not None:
            return
        p = self.params
        try:
            self.workers = inference_workers(p)
            self.pipeline = build_pipeline(p, self.workers)
        except SageError as exc:
            raise ParameterError(str(exc)) from None
        if self.machine_outputs is not None:
            self._load_machines_model(p)
        for decision in self.fuser.decisions:
            self.get_logger().info(f"model: {decision}")
        if self.fuser.fallback:
            self.get_logger().warning(f"model: backend auto fell back to {self.fuser.backend.name}: "
                                      f"{self.fuser.fallback}")
        if self.pipeline.smoother.enabled and not self.fuser.filters_coefficients:
            self.get_logger().info(f"fusion_smoothing, the fusion gain limits and fusion_change_cap do nothing with "
                                   f"{self.fuser.description}: it does not expose the model's coefficients")
        if p.warmup:
            self.fuser.warmup()

    def _load_machines_model(self, p: FusionParams) -> None:
        """The second stream's model; one that cannot load costs detection/image only, logged, not the node."""
        try:
            self.pipeline.machines = machines_fuser(p, self.workers)
        except SageError as exc:
            self.get_logger().error(f"detection_stream: the detection model did not load, so detection/image is not "
                                    f"published (fused/image is): {exc}")
            self.machine_outputs.destroy(self._destroy_output_publisher)
            self.machine_outputs = None

    def activate(self) -> None:
        """Subscribe and start the worker, the alignment watch and the timers (the model is loaded at configure)."""
        self.load_model()
        p = self.params
        # From the parameter, as the new alignment watch starts: auto_align's updates do not outlive an activation.
        self.pipeline.aligner = Aligner(p.alignment_config())
        keep_freed_memory()  # every frame allocates and frees full-frame buffers: keep them mapped
        self.worker = InferenceWorker(self._process, lambda: self.stats.count("dropped_pairs"), self.workers)
        self.worker.start()
        # With a rig, one homography's residual says nothing about a scene at many depths: no check.
        self.alignment_watch = AlignmentWatch(0.0 if self.rig else p.alignment_check_period, p.alignment_warn_px,
                                              np.reshape(p.homography_matrix, (3, 3)) if p.homography_matrix else None,
                                              p.auto_align, p.auto_align_checks, self._on_homography_update)
        if self.rig:
            self.alignment_watch.status.reason = "off: the rig's geometry registers the cameras"
        self.alignment_watch.start()
        self.demand = Demand(lambda: any(self._streams_subscribed()), lambda: self.params.lazy,
                             self.get_logger().info)
        is_stale = Staleness(lambda camera: self.stats.last_arrival_ns(camera.label),
                             lambda: self.params.stale_timeout, (self._now_ns, time.monotonic_ns))
        self.intake = FrameIntake(p, self._on_pair, self._on_single, is_stale, self.stats.bad.report,
                                  self.get_logger().warning)
        self.offset_watch = OffsetWatch(self.intake.time_offset)
        self.offset_watch.start()
        self.lenses = CameraLenses(p.rectify, self.stats.bad.report)
        if self.rig:
            self.rig.offer_file_lenses(self.lenses)
        self.inputs = ImageInputs(self, p, self.stats, self.intake, self.lenses, self.demand.wanted,
                                  self.stats.bad.report, self._now_ns)
        self.health = HealthMonitor(self, self.diagnostics_pub, lambda: self.params, self.stats, is_stale,
                                    self.inputs.subscriptions, self.intake,
                                    [group for group in (self.outputs, self.machine_outputs) if group is not None],
                                    self.alignment_watch, f"{self.fuser.name} on {self.fuser.device}",
                                    lambda: self.demand.idle_since, lambda: self.pipeline.normalizer.repeats,
                                    backend_fallback=self.fuser.fallback)
        # On the steady clock: diagnostics keep coming while a played bag (the node's clock) is paused.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timers = [self.create_timer(p.diagnostics_period, self.health.publish_diagnostics, clock=steady),
                        self.create_timer(0.25, self.health.watchdog, clock=steady),
                        # A pair whose deadline passes with no further frame (a dropped one) goes out here.
                        self.create_timer(PAIR_DEADLINE_POLL_S, self._poll_pairs, clock=steady)]
        if p.use_depth:
            self.depth_input = DepthInput(self, p, self.worker.submit, self.lenses, self.intake, self.stats,
                                          self.demand.wanted, self._now_ns)
            self.health.extra.append(self.depth_input.diagnostics)
        topics = {camera: self.inputs.subscriptions[camera].topic_name for camera in Camera}
        self.get_logger().info(
            f"fusing {topics[Camera.THERMAL]} ({p.thermal_transport}) + {topics[Camera.RGB]} ({p.rgb_transport}) "
            f"-> {self.outputs.image.topic_name} with {self.fuser.description}, {self.workers} frame(s) at once; "
            f"input QoS {p.qos_reliability}, "
            f"slop {p.slop} s, reference camera {p.reference_camera}")

    def _poll_pairs(self) -> None:
        """A pair whose deadline passed goes out; so does one whose depth did not come in time."""
        self.intake.poll(self._now_ns())
        if self.depth_input is not None:
            self.depth_input.matcher.poll(self._now_ns())

    def deactivate(self) -> None:
        """Unsubscribe and stop the threads and timers; the model stays loaded."""
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        if self.depth_input is not None:
            self.depth_input.close()
            self.depth_input = None
        if self.inputs is not None:
            self.inputs.close()
        if self.worker is not None:  # after the inputs: nothing submits any more; the job in hand finishes
            self.worker.stop()
            self.worker = None
        self.inputs = None
        if self.alignment_watch is not None:
            self.alignment_watch.stop()
        if self.offset_watch is not None:
            self.offset_watch.stop()
            self.offset_watch = None

    def cleanup(self) -> None:
        """Back to unconfigured: deactivate if needed, free the model, destroy the publishers."""
        self.deactivate()
        self.pipeline = None
        self.params = None  # unconfigured: read-only parameters may change until the next configure
        if self.outputs is not None:
            self.outputs.destroy(self._destroy_output_publisher)
            self.destroy_publisher(self.diagnostics_pub)
            self.outputs = None
        if self.machine_outputs is not None:
            self.machine_outputs.destroy(self._destroy_output_publisher)
            self.machine_outputs = None

    def _create_output_publisher(self, msg_type, topic: str, qos):
        return self.create_publisher(msg_type, topic, qos)

    def _destroy_output_publisher(self, publisher) -> None:
        self.destroy_publisher(publisher)

    @property
    def fuser(self) -> Fuser:
        return self.pipeline.fuser

    def _streams_subscribed(self) -> tuple[bool, bool]:
        """Whether fused/image (people) and detection/image (machines) have subscribers."""
        return self.outputs.wanted(), self.machine_outputs is not None and self.machine_outputs.wanted()

    def _on_set_parameters(self, changes) -> SetParametersResult:
        """Validate and apply run-time changes; never raises (a refusal carries the reason)."""
        if self.params is None:  # not configured yet: configure validates everything
            return SetParametersResult(successful=True)
        locked = [c.name for c in changes if c.name in SPECS and SPECS[c.name].metadata["read_only"]]
        if locked:
            return SetParametersResult(successful=False, reason=(
                f"{', '.join(locked)}: read-only while configured (managed node: cleanup, set, configure)"))
        try:
            new = from_values({c.name: c.value for c in changes if c.name in SPECS}, base=self.params)
            if self.pipeline is not None:
                self.pipeline.reconfigure_thermal(new.thermal_config())
                self.pipeline.reconfigure_smoothing(new.smoothing_config())
            if self.intake is not None:
                self.intake.reconfigure(new)
            if self.rig is not None:
                self.rig.reconfigure(new)
            if self.depth_input is not None:
                self.depth_input.matcher.configure(new.slop, new.queue_size, new.stale_timeout)
            if self.alignment_watch is not None:
                self.alignment_watch.warn_px = new.alignment_warn_px
        except Exception as exc:  # noqa: BLE001 - a parameter callback must answer, not raise
            reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            return SetParametersResult(successful=False, reason=reason)
        self.params = new
        return SetParametersResult(successful=True)

    # ----- input (executor and decoder threads, through the intake) ----------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_single(self, camera: Camera, frame: Frame) -> None:
        self.stats.count("passthrough")
        self.worker.submit(Job({camera: frame}))

    def _on_pair(self, thermal: Stamped, rgb: Stamped) -> None:
        self.stats.count("pairs")
        self.stats.record(pair_dt_ms=abs(thermal.stamp_ns - rgb.stamp_ns) / 1e6)
        arrivals = [s.arrival_ns for s in (thermal, rgb) if s.arrival_ns is not None]
        if arrivals:  # how long the pair's later message waited until the pair was proven best
            self.stats.record(pair_wait_ms=(self._now_ns() - max(arrivals)) / 1e6)
        job = Job.pair(thermal.item, rgb.item)
        if self.depth_input is not None:  # the pair waits for its rgb frame's depth (or its time runs out)
            self.depth_input.matcher.add_pair(job, rgb.stamp_ns, self._now_ns())
        else:
            self.worker.submit(job)

    # ----- inference and output (worker threads) ------------------------------------------------

    def _process(self, job: Job):
        """Fuse (on one of the worker's threads); returns what publishes the result, run in frame order."""
        p = self.params
        try:
            people, machines = self._streams_subscribed()
            fused = fuse_job(self.pipeline, job, p.output_encoding, self.intake.size_of, self.lenses, self.rig,
                             (people or not p.lazy, machines))
        except Exception as exc:  # noqa: BLE001 - keep the node alive whatever one frame does
            self.stats.failed("pair", exc)
            return None
        if not fused.passthrough:
            self.stats.record(inference_ms=fused.inference_ms)
            self.alignment_watch.offer(*fused.sources)  # rectified, as they were aligned

        def publish() -> None:  # with the settings the frame was made with, whatever changed since
            try:
                self._publish(fused, p)
            except Exception as exc:  # noqa: BLE001 - as above: the node outlives any one frame
                self.stats.failed("pair", exc)
            else:
                self.stats.outcome(None)
        return publish

    def _publish(self, fused: FusedFrame, p: FusionParams) -> None:
        streams = [(self.outputs, fused.image), (self.machine_outputs, fused.machines)]
        for outputs, image in [(o, i) for o, i in streams if o is not None and i is not None]:
            outputs.publish_image(fused, p.jpeg_quality, image)
            if fused.lens is not None:
                outputs.publish_info(fused_camera_info_fields(fused.lens, fused.plan, *fused.shape), fused.header)
        latency = (self._now_ns() - stamp_ns(fused.header)) / 1e9
        if PLAUSIBLE_LATENCY_S[0] <= latency <= PLAUSIBLE_LATENCY_S[1]:
            self.stats.record(latency_ms=1000 * latency)
        self.stats.count("published")
        self.stats.arrived("fused")

    def _on_homography_update(self, homography: np.ndarray, reason: str) -> None:
        """auto_align moved the homography (watch thread): the next frames use it; the parameter stays as set."""
        config = dataclasses.replace(self.params.alignment_config(), homography=[float(v) for v in homography.ravel()])
        self.pipeline.aligner = Aligner(config)
        self.get_logger().warning(f"auto_align: {reason}; now {np.round(homography.ravel(), 5).tolist()}")

    def destroy_node(self) -> None:
        self.deactivate()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    return run_node(FusionNode, "fusion_node", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
