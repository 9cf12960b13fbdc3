"""Thermal/RGB pairs through the real fusion node over DDS on this machine, measured.

Three small pieces, composed by :func:`run_loopback` (the demo and the node benchmarks use it):

- :class:`NodeProcess`: the fusion node as its own process, exactly as ``ros2 run`` would start it;
- :class:`Player`: publishes pre-rendered pairs at a fixed rate, stamped at publish time;
- :class:`Recorder`: receives the fused stream and /diagnostics, timestamping every frame.

DDS stays on loopback with a domain of its own (:func:`sage_ros.harness.dds.isolate_dds`), set in this
process and inherited by the node's process before either starts rclpy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sage_core.image_files import dataset_pairs, read_pair
from sage_core.synthetic import SyntheticScene
from sage_ros.harness.dds import isolate_dds
from sage_ros.codec.header import stamp_ns

#: Thermal stamped this far behind RGB: a realistic offset that approximate-time pairing must absorb.
THERMAL_OFFSET_NS = 3_000_000


@dataclass
class InputPair:
    thermal: np.ndarray  # as published (mono16 or mono8)
    thermal_encoding: str
    visible: np.ndarray  # BGR uint8


def synthetic_pairs(count: int, width: int, height: int, rate: float, thermal_encoding: str = "mono16"
                    ) -> list[InputPair]:
    scene = SyntheticScene(width, height)
    pairs = []
    for index in range(count):
        frame = scene.frame(index / rate)
        thermal = frame.thermal_mono16 if thermal_encoding == "mono16" else frame.thermal_mono8
        pairs.append(InputPair(thermal, thermal_encoding, frame.visible))
    return pairs


def dataset_input_pairs(folder: str | Path, count: int) -> list[InputPair]:
    """Pairs from a dataset folder (ir/, vis/), cycled to ``count``; thermal published as mono8."""
    import cv2

    files = dataset_pairs(folder)
    pairs = []
    for index in range(count):
        ir, vis = read_pair(files[index % len(files)])
        if ir.ndim == 3:
            ir = cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY if ir.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        if ir.dtype != np.uint8:
            ir = (ir // 257).astype(np.uint8) if ir.dtype == np.uint16 else ir.astype(np.uint8)
        if vis.ndim == 2:
            vis = cv2.cvtColor(vis, cv2.COLOR_GRAY2BGR)
        pairs.append(InputPair(ir, "mono8", vis[..., :3].astype(np.uint8)))
    return pairs


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


class LoopbackError(RuntimeError):
    """The fusion node did not start or did not answer; the message carries its log tail."""


class NodeProcess:
    """The fusion node in a process of its own, logging to ``log_path``."""

    def __init__(self, namespace: str, params: dict[str, object], log_path: Path | None = None,
                 pythonpath: str | None = None) -> None:
        self.log_path = log_path
        command = [sys.executable, "-m", "sage_ros.fusion_node", "--ros-args", "-r", f"__ns:={namespace}",
                   "--log-level", "sage_fusion:=info"]
        for name, value in params.items():
            command += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
        self._log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
        env = os.environ.copy()
        if pythonpath:  # another checkout's node (a benchmark's baseline), in this environment
            env["PYTHONPATH"] = pythonpath
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=pythonpath)

    def exited(self) -> int | None:
        return self.process.poll()

    def last_words(self) -> str:
        """The node's own error line (or its last log line), for a one-line message."""
        if not (self.log_path and Path(self.log_path).exists()):
            return "(no node log kept)"
        lines = [line.strip() for line in Path(self.log_path).read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["(node printed nothing)"])[-1] + f" [log: {self.log_path}]"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_path:
            self._log.close()


class Recorder:
    """Receives fused/image and /diagnostics on ``node``; maps fused stamps back to pair indices."""

    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        self.received: dict[int, tuple[float, object]] = {}  # index -> (arrival time, message)
        self.stamp_to_index: dict[int, int] = {}
        self.diagnostics: dict[str, str] = {}
        node.create_subscription(Image, "fused/image", self._on_fused, 50)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def expect(self, stamp_ns: int, index: int) -> None:
        self.stamp_to_index[stamp_ns] = index

    def _on_fused(self, msg) -> None:
        arrival = time.time()
        stamp = stamp_ns(msg.header)
        if stamp in self.stamp_to_index:
            self.received[self.stamp_to_index[stamp]] = (arrival, msg)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("sage_fusion"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self.diagnostics["message"] = status.message

    def frames(self) -> dict[int, np.ndarray]:
        return {index: np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1).copy()
                for index, (_, msg) in self.received.items()}


class Player:
    """Publishes thermal and RGB images on ``node`` with the given reliability."""

    def __init__(self, node, reliable: bool = False) -> None:
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        self.thermal_pub = node.create_publisher(Image, "thermal/image", qos)
        self.rgb_pub = node.create_publisher(Image, "rgb/image", qos)

    def connected(self) -> bool:
        return bool(self.thermal_pub.get_subscription_count() and self.rgb_pub.get_subscription_count())

    @staticmethod
    def messages(pairs: list[InputPair]) -> list[tuple[object, object]]:
        """(thermal, rgb) messages built once, before the clock starts."""
        from sensor_msgs.msg import Image

        from sage_ros.codec.image import array_to_image_fields

        out = []
        for pair in pairs:
            thermal = Image(**array_to_image_fields(pair.thermal, pair.thermal_encoding))
            thermal.header.frame_id = "thermal_optical"
            rgb = Image(**array_to_image_fields(pair.visible, "bgr8"))
            rgb.header.frame_id = "rgb_optical"
            out.append((thermal, rgb))
        return out

    def publish(self, thermal, rgb, stamp_ns: int) -> None:
        rgb.header.stamp.sec, rgb.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        thermal.header.stamp.sec, thermal.header.stamp.nanosec = divmod(stamp_ns + THERMAL_OFFSET_NS,
                                                                        1_000_000_000)
        self.rgb_pub.publish(rgb)
        self.thermal_pub.publish(thermal)

    def publish_serialized(self, pair: InputPair, stamp_ns: int) -> None:
        """``pair`` stamped ``stamp_ns`` (thermal a little later, as ``publish``), serialized here."""
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from sage_ros.codec.cdr import image_to_cdr

        rgb = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                     frame_id="rgb_optical")
        thermal_ns = stamp_ns + THERMAL_OFFSET_NS
        thermal = Header(stamp=Time(sec=thermal_ns // 1_000_000_000, nanosec=thermal_ns % 1_000_000_000),
                         frame_id="thermal_optical")
        self.rgb_pub.publish(image_to_cdr(rgb, pair.visible, "bgr8"))
        self.thermal_pub.publish(image_to_cdr(thermal, pair.thermal, pair.thermal_encoding))


class _Session:
    """A context of its own with one probe node (player + recorder) and an executor to spin it."""

    def __init__(self, namespace: str, reliable: bool) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("sage_loopback", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.player, self.recorder = Player(self.node, reliable), Recorder(self.node)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _wait_ready(session: _Session, node: NodeProcess, namespace: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (session.player.connected() and session.node.count_publishers(f"{namespace}/fused/image")):
        if node.exited() is not None:
            raise LoopbackError(f"fusion node exited with status {node.exited()} before it was ready: "
                                f"{node.last_words()}")
        if time.monotonic() > deadline:
            raise LoopbackError(f"fusion node not ready after {timeout:.0f} s: {node.last_words()}")
        session.spin_for(0.1)
    session.spin_for(0.5)  # let the node finish warming up before the clock starts


def _play(session: _Session, pairs: list[InputPair], rate_hz: float, progress: bool) -> float:
    """Publish every pair on schedule; returns the start time (time.time())."""
    from tqdm import tqdm

    messages = Player.messages(pairs)
    started = time.time()
    for index, (thermal, rgb) in enumerate(tqdm(messages, desc="publishing", unit="pair", disable=not progress)):
        session.spin_for(max(0.0, started + index / rate_hz - time.time()))
        now = time.time_ns()
        session.recorder.expect(now, index)
        session.player.publish(thermal, rgb, now)
    return started


def run_loopback(pairs: list[InputPair], rate_hz: float, node_params: dict[str, object] | None = None,
                 keep_frames: bool = False, namespace: str = "/sage_demo", startup_timeout: float = 90.0,
                 drain_s: float = 2.0, log_path: Path | None = None, progress: bool = True) -> LoopbackResult:
    """Publish ``pairs`` at ``rate_hz`` through a fusion node process; collect and time its output."""
    isolate_dds()
    params = node_params or {}
    node = NodeProcess(namespace, params, log_path)
    session = _Session(namespace, params.get("qos_reliability") == "reliable")
    try:
        _wait_ready(session, node, namespace, startup_timeout)
        started = _play(session, pairs, rate_hz, progress)
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
