"""Thermal/RGB pairs through the real fusion node over DDS on this machine, measured.

A player node publishes pre-rendered pairs at a fixed rate, the fusion node runs
as its own process (exactly as ``ros2 run`` would start it), and a recorder node
receives the fused stream and timestamps every frame. The demo and the node
benchmark are both thin wrappers over :func:`run_loopback`.

DDS is kept on loopback with a domain of its own (:func:`isolate_dds`), set in
this process and passed to the node's process before either starts rclpy.
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

from sage_core.data import dataset_pairs, read_pair
from sage_core.synthetic import SyntheticScene


#: Fast DDS profile: shared memory with large segments, UDP bound to 127.0.0.1 (see the file's comment).
FASTDDS_LOOPBACK_PROFILE = Path(__file__).resolve().parent / "fastdds_loopback.xml"


def isolate_dds(domain_id: int | None = None) -> dict[str, str]:
    """Keep DDS on loopback, in a domain of this run's own; returns the variables set.

    Must run before anything in the process starts rclpy; child processes inherit it.
    """
    values = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(domain_id if domain_id is not None else 100 + os.getpid() % 100),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_LOOPBACK_PROFILE),
    }
    os.environ.update(values)
    os.environ.pop("ROS_STATIC_PEERS", None)
    return values


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


def _node_command(namespace: str, params: dict[str, object]) -> list[str]:
    command = [sys.executable, "-m", "sage_ros.fusion_node", "--ros-args", "-r", f"__ns:={namespace}",
               "--log-level", "sage_fusion:=info"]
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["-p", f"{name}:={text}"]
    return command


def run_loopback(pairs: list[InputPair], rate_hz: float, node_params: dict[str, object] | None = None,
                 keep_frames: bool = False, namespace: str = "/sage_demo", startup_timeout: float = 90.0,
                 drain_s: float = 2.0, log_path: Path | None = None, progress: bool = True) -> LoopbackResult:
    """Publish ``pairs`` at ``rate_hz`` through a fusion node process; collect and time its output."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from tqdm import tqdm

    from sage_ros.image_conversion import array_to_image_fields

    isolate_dds()
    log_file = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    node_process = subprocess.Popen(_node_command(namespace, node_params or {}), stdout=log_file,
                                    stderr=subprocess.STDOUT, env=os.environ.copy())
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("sage_loopback", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: dict[int, tuple[float, Image]] = {}
    stamp_to_index: dict[int, int] = {}
    diagnostics: dict[str, str] = {}

    def on_fused(msg: Image) -> None:
        arrival = time.time()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp in stamp_to_index:
            received[stamp_to_index[stamp]] = (arrival, msg)

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("sage_fusion"):
                diagnostics.clear()
                diagnostics.update({kv.key: kv.value for kv in status.values})
                diagnostics["message"] = status.message

    node.create_subscription(Image, "fused/image", on_fused, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    reliability = node_params.get("qos_reliability", "best_effort") if node_params else "best_effort"
    camera_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                            reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                            else ReliabilityPolicy.BEST_EFFORT)
    thermal_pub = node.create_publisher(Image, "thermal/image", camera_qos)
    rgb_pub = node.create_publisher(Image, "rgb/image", camera_qos)

    def spin_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))

    def node_last_words() -> str:
        """The node's own error line (or its last log line), for a one-line message."""
        if not (log_path and Path(log_path).exists()):
            return "(no node log kept)"
        lines = [line.strip() for line in Path(log_path).read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["(node printed nothing)"])[-1] + f" [log: {log_path}]"

    try:
        deadline = time.monotonic() + startup_timeout
        while not (thermal_pub.get_subscription_count() and rgb_pub.get_subscription_count()
                   and node.count_publishers(f"{namespace}/fused/image")):
            if node_process.poll() is not None:
                raise LoopbackError(f"fusion node exited with status {node_process.returncode} before it was "
                                    f"ready: {node_last_words()}")
            if time.monotonic() > deadline:
                raise LoopbackError(f"fusion node not ready after {startup_timeout:.0f} s: {node_last_words()}")
            spin_for(0.1)
        spin_for(0.5)  # let the node finish warming up before the clock starts

        messages = []
        for pair in pairs:
            rgb = Image(**array_to_image_fields(pair.visible, "bgr8"))
            rgb.header.frame_id = "rgb_optical"
            thermal = Image(**array_to_image_fields(pair.thermal, pair.thermal_encoding))
            thermal.header.frame_id = "thermal_optical"
            messages.append((thermal, rgb))
        period = 1.0 / rate_hz
        started = time.time()
        bar = tqdm(total=len(pairs), desc="publishing", unit="pair", disable=not progress)
        for index, (thermal, rgb) in enumerate(messages):
            target = started + index * period
            spin_for(max(0.0, target - time.time()))
            now = time.time_ns()
            # Thermal 3 ms behind rgb: a realistic offset that approximate-time pairing must absorb.
            rgb.header.stamp.sec, rgb.header.stamp.nanosec = divmod(now, 1_000_000_000)
            thermal.header.stamp.sec, thermal.header.stamp.nanosec = divmod(now + 3_000_000, 1_000_000_000)
            stamp_to_index[now] = index
            rgb_pub.publish(rgb)
            thermal_pub.publish(thermal)
            bar.update(1)
        bar.close()
        sent_until = time.time()
        drain_end = time.monotonic() + drain_s
        while time.monotonic() < drain_end:
            spin_for(0.05)
        spin_for(min(1.0, drain_s))  # one more diagnostics period
        publish_ns = {index: stamp for stamp, index in stamp_to_index.items()}
        latencies = [1000 * (arrival - publish_ns[index] / 1e9) for index, (arrival, _) in received.items()]
        fused = {}
        if keep_frames:
            for index, (_, msg) in received.items():
                fused[index] = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1).copy()
        last_arrival = max((arrival for arrival, _ in received.values()), default=sent_until)
        return LoopbackResult(sent=len(pairs), received=len(received),
                              duration_s=max(last_arrival, sent_until) - started, latencies_ms=latencies,
                              fused=fused, diagnostics=dict(diagnostics))
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        if node_process.poll() is None:
            node_process.send_signal(signal.SIGINT)
            try:
                node_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node_process.kill()
                node_process.wait()
        if log_path:
            log_file.close()

