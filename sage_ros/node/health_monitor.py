"""The fusion node's watchdog and /diagnostics: stale cameras, silent topics, starvation, alignment, idling.

:class:`HealthMonitor` runs on the node's timers. It is given what it watches (statistics, the
subscriptions, the intake, the outputs' topics, the alignment watch, the idle state) and turns it into
log lines when something changes and a ``DiagnosticArray`` every ``diagnostics_period``; the rules
themselves are in ``stream/health_rules.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from sage_core.cameras import Camera
from sage_ros.parameters import FusionParams
from sage_ros.stream.alignment_watch import AlignmentWatch
from sage_ros.stream.health_rules import Level, Staleness, assess_health
from sage_ros.stream.intake import FrameIntake
from sage_ros.stream.stats import FusionStats

LEVELS = {Level.OK: DiagnosticStatus.OK, Level.WARN: DiagnosticStatus.WARN, Level.ERROR: DiagnosticStatus.ERROR}


class HealthMonitor:
    """Watchdog and diagnostics of one activation of the fusion node.

    ``node``: the ROS node (logger, clock, names, graph queries); ``publisher``: its /diagnostics
    publisher; ``params()``: the parameters in force; ``is_stale``: the staleness rule the intake
    applies too; ``subscriptions``: each camera's image subscription; ``outputs``: each group of fused
    outputs (``topic_names``, ``subscriber_counts()``: fused/image's, detection/image's); ``model``:
    what fuses, for the OK message; ``idle_since()``: since when nobody subscribes to a fused output
    (monotonic s), or None; ``repeated_frames()``: thermal frames that repeated the previous one (a
    camera's flat-field freeze), as the thermal normaliser counts them; ``backend_fallback``: why
    ``backend: auto`` did not use a faster backend although it was available (its build or load failed).
    """

    def __init__(self, node, publisher, params: Callable[[], FusionParams], stats: FusionStats,
                 is_stale: Staleness, subscriptions: dict[Camera, object], intake: FrameIntake,
                 outputs, alignment_watch: AlignmentWatch, model: str,
                 idle_since: Callable[[], float | None], repeated_frames: Callable[[], int],
                 backend_fallback: str = "") -> None:
        self.node, self.publisher, self.params, self.stats, self.is_stale = node, publisher, params, stats, is_stale
        self.subscriptions, self.intake, self.outputs = subscriptions, intake, outputs
        self.alignment_watch, self.model, self.idle_since = alignment_watch, model, idle_since
        self.repeated_frames = repeated_frames
        self.backend_fallback = backend_fallback
        #: More key-values for /diagnostics, each a function asked at every publish (the depth input's).
        self.extra: list[Callable[[], list[tuple[str, str]]]] = []
        self._stale = {camera: False for camera in Camera}
        self._warned_no_data: set[Camera] = set()
        self._publishers_seen: dict[Camera, float] = {}

    def watchdog(self) -> None:
        """Log stale cameras when that changes, and topics that have publishers but no data."""
        params = self.params()
        for camera in Camera:
            subscription = self.subscriptions[camera]
            stale = self.is_stale(camera)
            if stale != self._stale[camera]:
                self._stale[camera] = stale
                if stale:
                    self.node.get_logger().warning(
                        f"{camera.label} camera stale: nothing on {subscription.topic_name} for "
                        f"{params.stale_timeout:.2f} s; policy on_stale={params.on_stale}")
                else:
                    self.node.get_logger().info(f"{camera.label} camera back on {subscription.topic_name}")
            self._check_no_data(camera, subscription, params)

    def _check_no_data(self, camera: Camera, subscription, params: FusionParams) -> None:
        """Warn once when a topic has publishers but nothing arrives: say whether QoS or transport is to blame."""
        publishers = subscription.get_publisher_count()
        if publishers == 0 or self.stats.last_arrival(camera.label) is not None:
            self._publishers_seen.pop(camera, None)
            return
        # Count from when a publisher appeared, not from our start: a camera started later is not a fault.
        waited = time.monotonic() - self._publishers_seen.setdefault(camera, time.monotonic())
        if waited <= params.no_data_warning or camera in self._warned_no_data:
            return
        self._warned_no_data.add(camera)
        offered = {str(info.qos_profile.reliability.name).lower()
                   for info in self.node.get_publishers_info_by_topic(subscription.topic_name)}
        if params.qos_reliability == "reliable" and "best_effort" in offered:
            cause = ("QoS mismatch: this subscription is reliable, a publisher offers best_effort; "
                     "set qos_reliability:=best_effort")
        else:
            cause = ("QoS is compatible, so the transport is losing the messages: large images over "
                     "Fast DDS's default 512 KB shared-memory segments are dropped; use a profile with "
                     "larger segments (the path `fusion_node --dds-profile` prints) or reliable QoS on both sides")
        self.node.get_logger().warning(
            f"{subscription.topic_name} has {publishers} publisher(s) (offering "
            f"{', '.join(sorted(offered)) or 'unknown'}) but nothing arrived in {waited:.1f} s. {cause}")

    def starved(self) -> str | None:
        """Why nothing was published for stale_timeout although both cameras are live, or None."""
        params = self.params()
        now, timeout = self.stats.clock() / 1e9, params.stale_timeout  # the node's clock, as the arrivals
        last_output = self.stats.last_arrival("fused") or self.is_stale.started[0] / 1e9
        if now - last_output <= timeout or any(self.is_stale(camera) for camera in Camera):
            return None
        if self.idle_since() is not None:  # nothing was asked for: not a fault
            return None
        last_stamp = self.intake.last_stamp
        if len(last_stamp) < 2:
            return f"both cameras live but nothing fused for {now - last_output:.1f} s: every message was rejected"
        gap = abs(last_stamp[Camera.THERMAL] - last_stamp[Camera.RGB]) / 1e9
        return (f"both cameras live but nothing fused for {now - last_output:.1f} s: their latest stamps are "
                f"{gap:.3f} s apart (slop {params.slop} s)")

    def _alignment(self, params: FusionParams) -> tuple[list[tuple[str, str]], str | None]:
        """Diagnostics key-values of the alignment watch, and a warning when the residual is too large."""
        watch = self.alignment_watch.status
        px = watch.residual_px
        items = [("alignment residual (px, 640-wide)", "" if px is None else f"{px:.2f}"),
                 ("alignment check", watch.reason), ("alignment updates", str(watch.updates))]
        warning = None
        if px is not None and px > params.alignment_warn_px:
            warning = f"misaligned: residual {px:.1f} px > alignment_warn_px {params.alignment_warn_px:g}"
        return items, warning

    def _time_offset(self) -> list[tuple[str, str]]:
        """Diagnostics key-values of the camera time offset: in force, estimated, how sure, why."""
        estimator = self.intake.time_offset
        estimate = estimator.last
        estimated = "" if estimate.offset_s is None else f"{1000 * estimate.offset_s:.1f}"
        return [("camera time offset applied (ms)", f"{1000 * estimator.applied_s:.1f}"),
                ("camera time offset estimate (ms)", estimated),
                ("camera time offset confidence", f"{estimate.confidence:.2f}"),
                ("camera time offset", ("following the estimate: " if estimator.follow else "estimate only "
                                        "(auto_time_offset false): ") + estimate.reason)]

    def _idle(self, params: FusionParams) -> tuple[list[tuple[str, str]], str | None]:
        """Diagnostics key-values of lazy processing, and the idle message while nobody subscribes."""
        idle_since = self.idle_since()
        items = [("lazy", str(params.lazy).lower()),
                 ("idle (no subscribers)", "true" if idle_since is not None else "false")]
        if idle_since is None:
            return items, None
        return items, (f"idle for {time.monotonic() - idle_since:.1f} s: nobody subscribes to "
                       f"{', '.join(t for group in self.outputs for t in group.topic_names)}; conversion and "
                       "inference skipped")

    def _connections(self) -> list[tuple[str, str]]:
        """Matched publishers of each input and subscribers of each output: who this node can hear and reach
        (a camera or recorder is only counted once discovery matched it in this direction)."""
        items = [(f"matched publishers: {camera.label}", str(self.subscriptions[camera].get_publisher_count()))
                 for camera in Camera]
        return items + [(f"matched subscribers: {topic}", str(count))
                        for group in self.outputs for topic, count in group.subscriber_counts().items()]

    def publish_diagnostics(self) -> None:
        params = self.params()
        stale = [camera.label for camera in Camera if self.is_stale(camera)]
        silent = [camera.label for camera in sorted(self._warned_no_data)
                  if self.stats.last_arrival(camera.label) is None]
        alignment_items, misaligned = self._alignment(params)
        idle_items, idle = self._idle(params)
        level, message = assess_health(self.stats, stale, silent, self.model, self.starved(), misaligned, idle)
        repeats = [("repeated thermal frames (camera freezes)", str(self.repeated_frames())),
                   ("backend fallback", self.backend_fallback)]
        extra = [item for source in self.extra for item in source()]
        values = self.stats.key_values(self.intake.unpaired,
                                       alignment_items + self._time_offset() + repeats + idle_items
                                       + self._connections() + extra)
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        # The fully qualified name (namespace included): two instances must not share a status name
        # in aggregator views ("front/sage_fusion: fusion", like diagnostic_updater's "<node>: <task>").
        name = f"{self.node.get_fully_qualified_name().lstrip('/')}: fusion"
        array.status = [DiagnosticStatus(level=LEVELS[level], name=name,
                                         message=message, hardware_id=self.node.get_fully_qualified_name(),
                                         values=[KeyValue(key=k, value=v) for k, v in values])]
        self.publisher.publish(array)
