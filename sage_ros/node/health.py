"""The fusion node's watchdog and /diagnostics: stale cameras, silent topics, starvation, alignment, idling.

:class:`HealthMonitor` runs on the node's timers. It reads the node's state (statistics, inputs,
alignment watch, outputs) and turns it into log lines when something changes and a
``DiagnosticArray`` every ``diagnostics_period``; the rules themselves are in ``diagnostics.py``.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray

from sage_core.cameras import Camera
from sage_ros.stream.stats import assess_health, status


class HealthMonitor:
    """Watchdog and diagnostics of one :class:`~sage_ros.fusion_node.FusionNode` while it is active."""

    def __init__(self, node) -> None:
        self.node = node
        self.started = time.monotonic()
        self._stale = {camera: False for camera in Camera}
        self._warned_no_data: set[Camera] = set()
        self._publishers_seen: dict[Camera, float] = {}

    @property
    def params(self):
        return self.node.params

    def is_stale(self, camera: Camera) -> bool:
        last = self.node.stats.last_arrival(camera.label)
        reference_time = last if last is not None else self.started
        return time.monotonic() - reference_time > self.params.stale_timeout

    def watchdog(self) -> None:
        """Log stale cameras when that changes, and topics that have publishers but no data."""
        for camera in Camera:
            subscription = self.node.inputs.subscriptions[camera]
            stale = self.is_stale(camera)
            if stale != self._stale[camera]:
                self._stale[camera] = stale
                if stale:
                    self.node.get_logger().warning(
                        f"{camera.label} camera stale: nothing on {subscription.topic_name} for "
                        f"{self.params.stale_timeout:.2f} s; policy on_stale={self.params.on_stale}")
                else:
                    self.node.get_logger().info(f"{camera.label} camera back on {subscription.topic_name}")
            self._check_no_data(camera, subscription)

    def _check_no_data(self, camera: Camera, subscription) -> None:
        """Warn once when a topic has publishers but nothing arrives: say whether QoS or transport is to blame."""
        publishers = subscription.get_publisher_count()
        if publishers == 0 or self.node.stats.last_arrival(camera.label) is not None:
            self._publishers_seen.pop(camera, None)
            return
        # Count from when a publisher appeared, not from our start: a camera started later is not a fault.
        waited = time.monotonic() - self._publishers_seen.setdefault(camera, time.monotonic())
        if waited <= self.params.no_data_warning or camera in self._warned_no_data:
            return
        self._warned_no_data.add(camera)
        offered = {str(info.qos_profile.reliability.name).lower()
                   for info in self.node.get_publishers_info_by_topic(subscription.topic_name)}
        if self.params.qos_reliability == "reliable" and "best_effort" in offered:
            cause = ("QoS mismatch: this subscription is reliable, a publisher offers best_effort; "
                     "set qos_reliability:=best_effort")
        else:
            cause = ("QoS is compatible, so the transport is losing the messages: large images over "
                     "Fast DDS's default 512 KB shared-memory segments are dropped; use a profile with "
                     "larger segments (sage_ros/harness/fastdds_loopback.xml) or reliable QoS on both sides")
        self.node.get_logger().warning(
            f"{subscription.topic_name} has {publishers} publisher(s) (offering "
            f"{', '.join(sorted(offered)) or 'unknown'}) but nothing arrived in {waited:.1f} s. {cause}")

    def starved(self) -> str | None:
        """Why nothing was published for stale_timeout although both cameras are live, or None."""
        now, timeout = time.monotonic(), self.params.stale_timeout
        last_output = self.node.stats.last_arrival("fused") or self.started
        if now - last_output <= timeout or any(self.is_stale(camera) for camera in Camera):
            return None
        if self.node.idle_since is not None:  # nothing was asked for: not a fault
            return None
        last_stamp = self.node.intake.last_stamp
        if len(last_stamp) < 2:
            return f"both cameras live but nothing fused for {now - last_output:.1f} s: every message was rejected"
        gap = abs(last_stamp[Camera.THERMAL] - last_stamp[Camera.RGB]) / 1e9
        return (f"both cameras live but nothing fused for {now - last_output:.1f} s: their latest stamps are "
                f"{gap:.3f} s apart (slop {self.params.slop} s)")

    def _alignment(self) -> tuple[list[tuple[str, str]], str | None]:
        """Diagnostics key-values of the alignment watch, and a warning when the residual is too large."""
        watch = self.node.alignment_watch.status
        px = watch.residual_px
        items = [("alignment residual (px, 640-wide)", "" if px is None else f"{px:.2f}"),
                 ("alignment check", watch.reason), ("alignment updates", str(watch.updates))]
        warning = None
        if px is not None and px > self.params.alignment_warn_px:
            warning = f"misaligned: residual {px:.1f} px > alignment_warn_px {self.params.alignment_warn_px:g}"
        return items, warning

    def _idle(self) -> tuple[list[tuple[str, str]], str | None]:
        """Diagnostics key-values of lazy processing, and the idle message while nobody subscribes."""
        idle_since = self.node.idle_since
        items = [("lazy", str(self.params.lazy).lower()),
                 ("idle (no subscribers)", "true" if idle_since is not None else "false")]
        if idle_since is None:
            return items, None
        return items, (f"idle for {time.monotonic() - idle_since:.1f} s: nobody subscribes to "
                       f"{', '.join(self.node.outputs.topic_names)}; conversion and inference skipped")

    def publish_diagnostics(self) -> None:
        node = self.node
        stale = [camera.label for camera in Camera if self.is_stale(camera)]
        silent = [camera.label for camera in sorted(self._warned_no_data)
                  if node.stats.last_arrival(camera.label) is None]
        alignment_items, misaligned = self._alignment()
        idle_items, idle = self._idle()
        level, message = assess_health(node.stats, stale, silent, f"{node.fuser.name} on {node.fuser.device}",
                                       self.starved(), misaligned, idle)
        array = DiagnosticArray()
        array.header.stamp = node.get_clock().now().to_msg()
        array.status = [status(f"{node.get_name()}: fusion", node.get_fully_qualified_name(), level, message,
                               node.stats.key_values(node.intake.pairer.unpaired, alignment_items + idle_items))]
        node.diag_pub.publish(array)
