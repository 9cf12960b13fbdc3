"""The node process as a robot runs it: it stops cleanly and promptly on SIGINT and SIGTERM while frames flow,
and a node started after one was killed with SIGKILL (stale Fast DDS shared-memory files left) runs at full rate."""

from __future__ import annotations

import re
import signal
import time

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo

from sage_ros.codec.header import stamp_ns
from sage_ros.harness.dds import remove_stale_shm_files, stale_shm_files
from sage_ros.harness.loopback import Recorder
from sage_ros.harness.node_process import NodeProcess
from sage_ros.harness.pairs import synthetic_pairs
from sage_ros.harness.probe import FUSION_NODE_NAME, NodeSource, Player
from sage_ros.topic_names import FUSED_CAMERA_INFO, camera_info_topic

pytestmark = pytest.mark.dds  # node processes and probes: a DDS domain of its own per test

NAMESPACE = "/lifetime"


class Rig:
    """A fusion node process, and in this process the cameras (with the RGB camera_info) and a recorder."""

    def __init__(self, log_path, width: int = 320, height: int = 256) -> None:
        self.node = NodeProcess(NAMESPACE, {"backend": "torch", "warmup": False}, log_path)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.probe = rclpy.create_node("lifetime_probe", namespace=NAMESPACE, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.probe)
        self.player, self.recorder = Player(self.probe), Recorder(self.probe, NAMESPACE)
        self.infos: list[CameraInfo] = []
        source = NodeSource(self.probe, FUSION_NODE_NAME, NAMESPACE)
        self.probe.create_subscription(CameraInfo, FUSED_CAMERA_INFO, source.only(FUSED_CAMERA_INFO, self.infos.append),
                                       50)
        self.rgb_info = self.probe.create_publisher(CameraInfo, camera_info_topic("rgb"), qos_profile_sensor_data)
        self.messages = Player.messages(synthetic_pairs(8, width, height, 30.0))
        self.size, self.sent = (width, height), 0

    def spin(self, seconds: float = 0.02) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.005)

    def wait_ready(self) -> None:
        self.node.wait_ready(lambda: self.player.connected() and self.recorder.node_connected(), 120, self.spin)

    def send(self, rate: float = 20.0) -> None:
        """One pair now (and the RGB camera_info, as a driver sends it with every image), then wait a period."""
        stamp = time.time_ns()
        self.recorder.expect(stamp, self.sent)
        info = CameraInfo(width=self.size[0], height=self.size[1], distortion_model="plumb_bob", d=[0.0] * 5,
                          k=[300.0, 0.0, self.size[0] / 2, 0.0, 300.0, self.size[1] / 2, 0.0, 0.0, 1.0])
        info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        info.header.frame_id = "rgb_optical"
        self.rgb_info.publish(info)
        self.player.publish(*self.messages[self.sent % len(self.messages)], stamp)
        self.sent += 1
        self.spin(1.0 / rate)

    def close(self) -> None:
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)
        self.node.stop()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_node_stops_cleanly_and_promptly_on_a_signal_while_frames_flow(tmp_path, signum):
    rig = Rig(tmp_path / "node.log")
    try:
        rig.wait_ready()
        while len(rig.recorder.received) < 10 and rig.sent < 200:
            rig.send()
        rig.node.process.send_signal(signum)
        signalled = time.monotonic()
        while rig.node.exited() is None and time.monotonic() - signalled < 10:
            rig.send()  # the cameras go on while it stops
        stopped_after = time.monotonic() - signalled
        rig.spin(0.5)
    finally:
        rig.close()
    log = (tmp_path / "node.log").read_text()
    assert rig.node.process.returncode == 0, log[-2000:]
    assert stopped_after < 5.0, f"took {stopped_after:.1f} s to stop"
    assert f"stopped on {signal.Signals(signum).name}" in log
    assert not re.search(r"Traceback|\[ERROR\]|failed", log), log[-2000:]
    # Nothing half-done: every fused image that went out came with its camera_info, the last one included.
    images = {stamp_ns(msg.header) for _, msg in rig.recorder.received.values()}
    infos = {stamp_ns(msg.header) for msg in rig.infos}
    assert len(images) >= 10 and images == infos, (len(images), len(infos), sorted(images ^ infos))


def test_a_node_started_after_one_was_killed_runs_at_full_rate(tmp_path):
    killed = Rig(tmp_path / "killed.log", 640, 512)
    try:
        killed.wait_ready()
        for _ in range(10):
            killed.send()
        killed.node.process.send_signal(signal.SIGKILL)
        killed.node.process.wait()
    finally:
        killed.close()
    assert stale_shm_files(min_age_s=1.0), "SIGKILL left no Fast DDS shared-memory files: nothing stale to start beside"
    rig = Rig(tmp_path / "after.log", 640, 512)
    try:
        rig.wait_ready()
        first = rig.sent
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            rig.send(rate=20.0)
        rig.spin(1.0)
        sent = rig.sent - first
        received = sum(1 for index in rig.recorder.received if index >= first)
        assert received >= 0.9 * sent, f"{received} of {sent} frames came back after the crash"
        # The crashed node's files hold RAM (its 64 MB segment): the cleanup takes them, and only them.
        stale = set(stale_shm_files(min_age_s=1.0))
        assert stale and set(remove_stale_shm_files(min_age_s=1.0)) == stale
        assert not any(path.exists() for path in stale)
        second = rig.sent
        for _ in range(10):
            rig.send(rate=20.0)
        rig.spin(1.0)
        assert sum(1 for index in rig.recorder.received if index >= second) >= 9  # the live node's files kept
    finally:
        rig.close()
    assert "open_and_lock_file failed" not in (tmp_path / "after.log").read_text()
