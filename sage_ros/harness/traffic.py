"""Live camera traffic against a fusion node process, measured: for the node benchmark and the soak test.

Three processes, as on a robot: the cameras (a publisher process of their own, optionally mixing
malformed messages and stamp jumps into the streams), the fusion node (:class:`NodeProcess`), and
this process, which records the fused stream (latency = arrival - stamp, one clock on one machine)
and samples the node's CPU time and resident memory once a second.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field

import numpy as np

from sage_ros.codec.cdr import image_from_cdr
from sage_ros.codec.header import stamp_ns
from sage_ros.codec.image import array_to_image_fields
from sage_ros.harness.dds import isolate_dds
from sage_ros.harness.node_process import NodeProcess
from sage_ros.harness.pairs import synthetic_pairs
from sage_ros.harness.probe import FUSION_NODE_NAME, NodeSource, Player, fusion_diagnostics, node_connected
from sage_ros.topic_names import DIAGNOSTICS, FUSED_IMAGE

#: Faults the publisher can mix in; each is a message the node must count and survive.
FAULTS = ("encoding", "data_length", "zero_size", "non_finite", "encoding_change", "stamp_jump", "invalid_stamp")
DAY_NS = 86_400 * 1_000_000_000


def _faulty(kind: str, thermal, rgb, stamp_ns: int):
    """(message, is_thermal) for one fault, built from good messages (copies, the originals are reused)."""
    from sensor_msgs.msg import Image

    if kind == "encoding":
        msg = Image(**{**_fields(rgb), "encoding": "yuv422"})
    elif kind == "data_length":
        msg = Image(**{**_fields(rgb), "data": bytes(rgb.data)[:-7]})
    elif kind == "zero_size":
        msg = Image(**{**_fields(thermal), "width": 0, "step": 0, "data": b""})
    elif kind == "non_finite":
        msg = Image(**array_to_image_fields(np.full((thermal.height, thermal.width), np.nan, np.float32), "32FC1"))
    elif kind == "encoding_change":
        msg = Image(**array_to_image_fields(np.full((thermal.height, thermal.width), 3e38, np.float32), "32FC1"))
    else:
        msg = Image(**_fields(thermal))
    msg.header.frame_id = "rgb_optical" if kind in ("encoding", "data_length") else "thermal_optical"
    offset = {"stamp_jump": DAY_NS, "invalid_stamp": -stamp_ns}.get(kind, 0)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns + offset, 1_000_000_000)
    return msg, kind not in ("encoding", "data_length")


def _fields(msg) -> dict:
    return {"height": msg.height, "width": msg.width, "encoding": msg.encoding, "is_bigendian": msg.is_bigendian,
            "step": msg.step, "data": bytes(msg.data)}


def publisher_main(namespace: str, width: int, height: int, rate: float, seconds: float, fault_every: int,
                   connection) -> None:
    """Child process: wait for the node, publish pairs at ``rate`` for ``seconds``; report counts through
    ``connection``. Every ``fault_every``-th period (0: never) one fault of the next kind is sent too."""
    import rclpy

    # DDS settings (loopback, domain, profile) come with the environment the parent set before starting us.
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("sage_cameras", namespace=namespace, context=context)
    player = Player(node)
    pairs = synthetic_pairs(16, width, height, rate)
    messages = Player.messages(pairs)  # for the faults, built from good messages
    deadline = time.monotonic() + 60
    while not player.connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    connection.send("ready")
    connection.recv()  # go
    sent, faults, started = 0, {kind: 0 for kind in FAULTS}, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(max(0.0, sent / rate - elapsed))
        thermal, rgb = messages[sent % len(messages)]
        stamp = time.time_ns()
        # Serialized here (one copy of the pixels), as a camera driver in C++ costs; rclpy's message
        # conversion would copy each image three times and take the cores the node is measured on.
        player.publish_serialized(pairs[sent % len(pairs)], stamp)
        if fault_every and sent % fault_every == fault_every - 1:
            kind = FAULTS[sum(faults.values()) % len(FAULTS)]
            msg, is_thermal = _faulty(kind, thermal, rgb, stamp + 1_000_000)
            (player.thermal_pub if is_thermal else player.rgb_pub).publish(msg)
            faults[kind] += 1
        sent += 1
    connection.send({"sent": sent, "faults": faults, "seconds": time.monotonic() - started})
    node.destroy_node()
    rclpy.shutdown(context=context)


@dataclass
class Sample:
    """One second of a run, seen from outside the node."""

    t: float  # seconds since the traffic started
    at: float  # monotonic time of the sample
    received: int  # fused frames so far
    cpu_percent: float  # node process CPU over the last second (100 = one core)
    rss_mb: float


@dataclass
class LiveRun:
    sent: int = 0
    seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    arrivals_s: list[float] = field(default_factory=list)  # monotonic arrival time of each fused frame
    samples: list[Sample] = field(default_factory=list)
    diagnostics: dict[str, str] = field(default_factory=dict)
    node_cpu_s: float = 0.0

    @property
    def received(self) -> int:
        return len(self.latencies_ms)

    def percentiles(self, start_s: float = -np.inf, end_s: float = np.inf) -> dict[str, float]:
        """Latency percentiles of the frames that arrived in [start_s, end_s) (monotonic seconds)."""
        values = [lat for lat, t in zip(self.latencies_ms, self.arrivals_s) if start_s <= t < end_s]
        values = np.asarray(values or [np.nan])
        return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}


class _Recorder:
    def __init__(self, node, namespace: str, run: LiveRun) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        self.run = run
        source = NodeSource(node, FUSION_NODE_NAME, namespace)  # this run's node only
        # Serialized, reading the stamp only: a viewer or recorder in C++ costs no Python conversion either.
        self.fused = node.create_subscription(Image, FUSED_IMAGE, source.only(FUSED_IMAGE, self._on_fused), 50,
                                              raw=True)
        node.create_subscription(DiagnosticArray, DIAGNOSTICS, source.only(DIAGNOSTICS, self._on_diagnostics), 10)

    def ready(self) -> bool:
        return node_connected(self.run.diagnostics, self.fused.topic_name) and self.fused.get_publisher_count() > 0

    def _on_fused(self, data: bytes) -> None:
        stamp = stamp_ns(image_from_cdr(data).header)
        self.run.latencies_ms.append((time.time_ns() - stamp) / 1e6)
        self.run.arrivals_s.append(time.monotonic())

    def _on_diagnostics(self, msg) -> None:
        self.run.diagnostics = fusion_diagnostics(msg) or self.run.diagnostics


def run_live(width: int, height: int, rate: float, seconds: float, node_params: dict[str, object],
             fault_every: int = 0, namespace: str = "/sage_live", log_path=None, on_sample=None,
             node_pythonpath: str | None = None) -> LiveRun:
    """Cameras -> node -> recorder for ``seconds``; see the module docstring. ``on_sample(sample, run)`` is
    called once a second (progress, per-minute reports)."""
    import psutil
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    isolate_dds()
    run = LiveRun()
    node = NodeProcess(namespace, node_params, log_path, node_pythonpath)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    cameras = multiprocessing.get_context("spawn").Process(
        target=publisher_main, args=(namespace, width, height, rate, seconds, fault_every, child), daemon=True)
    cameras.start()
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("sage_recorder", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    recorder = _Recorder(probe, namespace, run)
    try:
        _start(parent, node, executor, recorder)
        _measure(run, psutil.Process(node.process.pid), executor, parent, seconds, on_sample)
    finally:
        probe.destroy_node()
        rclpy.shutdown(context=context)
        node.stop()
        cameras.join(timeout=10)
        if cameras.is_alive():  # the node never came up, or the cameras hung: they end with the run all the same
            cameras.kill()
            cameras.join()
    return run


def _start(parent, node: NodeProcess, executor, recorder: _Recorder) -> None:
    """Until the cameras see the node, and the node (by its /diagnostics) hears them and reaches the recorder."""
    node.wait_ready(lambda: parent.poll() and recorder.ready(), 120, lambda: executor.spin_once(timeout_sec=0.05))
    parent.recv()  # "ready"
    parent.send("go")


def _measure(run: LiveRun, process, executor, parent, seconds: float, on_sample) -> None:
    started = time.monotonic()
    cpu_start = sum(process.cpu_times()[:2])
    last_cpu, last_t, next_sample = cpu_start, started, started + 1.0
    while not parent.poll() or time.monotonic() - started < seconds:
        executor.spin_once(timeout_sec=0.01)
        now = time.monotonic()
        if now >= next_sample:
            cpu = sum(process.cpu_times()[:2])
            sample = Sample(now - started, now, run.received, 100 * (cpu - last_cpu) / (now - last_t),
                            process.memory_info().rss / 2**20)
            run.samples.append(sample)
            last_cpu, last_t, next_sample = cpu, now, next_sample + 1.0
            if on_sample:
                on_sample(sample, run)
    report = parent.recv()
    run.sent, run.faults, run.seconds = report["sent"], report["faults"], report["seconds"]
    drain = time.monotonic() + 2.0  # the last frames and one more diagnostics message
    while time.monotonic() < drain:
        executor.spin_once(timeout_sec=0.01)
    run.node_cpu_s = sum(process.cpu_times()[:2]) - cpu_start
