"""Thermal/RGB pairs through the real fusion node over DDS on this machine, measured.

Composed by :func:`run_loopback` (the demo and the node benchmarks use it): the fusion node as its
own process (:class:`~sage_ros.harness.node_process.NodeProcess`), a probe node in this process that
publishes pre-rendered pairs at a fixed rate, stamped at publish time
(:class:`~sage_ros.harness.probe.Player`), and a :class:`Recorder` of the fused stream and /diagnostics
that timestamps every frame.

DDS stays on loopback with a domain of its own (:func:`sage_ros.harness.dds.isolate_dds`), set in this
process and inherited by the node's process before either starts rclpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sage_ros.codec.header import stamp_ns
from sage_ros.harness.dds import isolate_dds
from sage_ros.harness.node_process import NodeProcess
from sage_ros.harness.pairs import InputPair
from sage_ros.harness.probe import FUSION_NODE_NAME, NodeSource, Player, fusion_diagnostics, node_connected
from sage_ros.topic_names import DIAGNOSTICS, FUSED_IMAGE


@dataclass
class LoopbackResult:
    sent: int
    received: int
    duration_s: float
    latencies_ms: list[float]
    fused: dict[int, np.ndarray] = field(default_factory=dict)  # index -> fused BGR (when kept)
    diagnostics: dict[str, str] = field(default_factory=dict)
    published_ns: dict[int, int] = field(default_factory=dict)  # index -> publish time = RGB stamp (when kept)
    fused_messages: dict[int, tuple[int, object]] = field(default_factory=dict)  # index -> (arrival ns, message)

    @property
    def delivered_hz(self) -> float:
        return self.received / self.duration_s if self.duration_s > 0 else 0.0

    def latency_percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        values = np.asarray(self.latencies_ms)
        return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}


class Recorder:
    """Receives fused/image and /diagnostics from the fusion node in ``namespace`` only (``NodeSource``) on
    ``node``; maps fused stamps back to pair indices."""

    def __init__(self, node, namespace: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        self.received: dict[int, tuple[float, object]] = {}  # index -> (arrival time, message)
        self.stamp_to_index: dict[int, int] = {}
        self.diagnostics: dict[str, str] = {}
        source = NodeSource(node, FUSION_NODE_NAME, namespace)
        self.fused_subscription = node.create_subscription(Image, FUSED_IMAGE,
                                                           source.only(FUSED_IMAGE, self._on_fused), 50)
        node.create_subscription(DiagnosticArray, DIAGNOSTICS, source.only(DIAGNOSTICS, self._on_diagnostics), 10)

    def node_connected(self) -> bool:
        """The node hears both cameras and reaches this recorder (its latest /diagnostics), and this recorder
        hears it."""
        return (node_connected(self.diagnostics, self.fused_subscription.topic_name)
                and self.fused_subscription.get_publisher_count() > 0)

    def expect(self, stamp_ns: int, index: int) -> None:
        self.stamp_to_index[stamp_ns] = index

    def _on_fused(self, msg) -> None:
        arrival = time.time()
        stamp = stamp_ns(msg.header)
        if stamp in self.stamp_to_index:
            self.received[self.stamp_to_index[stamp]] = (arrival, msg)

    def _on_diagnostics(self, msg) -> None:
        self.diagnostics = fusion_diagnostics(msg) or self.diagnostics

    def frames(self) -> dict[int, np.ndarray]:
        return {index: np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1).copy()
                for index, (_, msg) in self.received.items()}


class _Session:
    """A context of its own with one probe node (player + recorder) and an executor to spin it."""

    def __init__(self, namespace: str, reliable: bool, rig: bool = False) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("sage_loopback", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.player, self.recorder = Player(self.node, reliable, rig), Recorder(self.node, namespace)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _wait_ready(session: _Session, node: NodeProcess, timeout: float) -> None:
    """Until the node has matched both cameras and the recorder (its /diagnostics say so) and they it."""
    node.wait_ready(lambda: session.player.connected() and session.recorder.node_connected(),
                    timeout, lambda: session.spin_for(0.1))


def _play(session: _Session, pairs: list[InputPair], rate_hz: float, progress: bool,
          camera_infos: dict[str, dict] | None = None) -> float:
    """Publish every pair on schedule (with its depth and the camera_infos, for a rig); returns the start time."""
    from tqdm import tqdm

    messages, depths = Player.messages(pairs), Player.depth_messages(pairs)
    started = time.time()
    for index, (thermal, rgb) in enumerate(tqdm(messages, desc="publishing", unit="pair", disable=not progress)):
        session.spin_for(max(0.0, started + index / rate_hz - time.time()))
        now = time.time_ns()
        session.recorder.expect(now, index)
        if camera_infos:
            session.player.publish_rig(depths[index], camera_infos, now)
        session.player.publish(thermal, rgb, now)
    return started


def run_loopback(pairs: list[InputPair], rate_hz: float, node_params: dict[str, object] | None = None,
                 keep_frames: bool = False, namespace: str = "/sage_demo", startup_timeout: float = 90.0,
                 drain_s: float = 2.0, log_path: Path | None = None, progress: bool = True,
                 camera_infos: dict[str, dict] | None = None) -> LoopbackResult:
    """Publish ``pairs`` at ``rate_hz`` through a fusion node process; collect and time its output.
    ``camera_infos``: a rendered rig's camera_info fields by camera, published with each pair (and its depth)."""
    isolate_dds()
    params = node_params or {}
    node = NodeProcess(namespace, params, log_path)
    session = _Session(namespace, params.get("qos_reliability") == "reliable", bool(camera_infos))
    try:
        _wait_ready(session, node, startup_timeout)
        started = _play(session, pairs, rate_hz, progress, camera_infos)
        sent_until = time.time()
        session.spin_for(drain_s + min(1.0, drain_s))  # the last frames, and one more diagnostics period
        recorder = session.recorder
        publish_s = {index: stamp / 1e9 for stamp, index in recorder.stamp_to_index.items()}
        latencies = [1000 * (arrival - publish_s[index]) for index, (arrival, _) in recorder.received.items()]
        last_arrival = max((arrival for arrival, _ in recorder.received.values()), default=sent_until)
        return LoopbackResult(sent=len(pairs), received=len(recorder.received),
                              duration_s=max(last_arrival, sent_until) - started, latencies_ms=latencies,
                              fused=recorder.frames() if keep_frames else {}, diagnostics=dict(recorder.diagnostics),
                              published_ns={i: s for s, i in recorder.stamp_to_index.items()} if keep_frames else {},
                              fused_messages={i: (round(arrival * 1e9), msg) for i, (arrival, msg)
                                              in recorder.received.items()} if keep_frames else {})
    finally:
        session.close()
        node.stop()
