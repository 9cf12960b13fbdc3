"""One clock: under use_sim_time the node measures stamps, rates and latency on /clock, so a played bag that
pauses is stale while paused and carries on without stamp jumps when it resumes."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from rosgraph_msgs.msg import Clock

from tests.ros_harness import Loopback
from tests.test_fusion_node import rgb_msg, thermal_msg

pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


SECOND = 1_000_000_000
START = 5_000 * SECOND  # sim time: far from the wall clock, as a recorded bag is


@pytest.fixture()
def sim():
    loop = Loopback(use_sim_time=True, max_stamp_jump=1.0, stale_timeout=0.5, diagnostics_period=0.1)
    clock = loop.probe.create_publisher(Clock, "/clock", 10)
    yield loop, clock
    loop.close()


def play(loop, clock, start_ns: int, frames: int, period_ns: int = 100_000_000) -> int:
    """A bag playing: /clock then a pair at each step, in real time; returns the next stamp."""
    stamp = start_ns
    for _ in range(frames):
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(stamp + 20_000_000, SECOND)  # the recorder's delay
        clock.publish(msg)
        time.sleep(0.01)
        loop.send(thermal_msg(stamp + 3_000_000), rgb_msg(stamp))
        time.sleep(period_ns / 1e9 - 0.01)
        stamp += period_ns
    return stamp


def test_a_paused_bag_is_stale_not_a_stamp_jump(sim):
    loop, clock = sim
    stamp = play(loop, clock, START, 8)
    assert loop.wait_for(lambda: len(loop.fused) >= 6)
    values = loop.diagnostic_values()
    latency = float(values.get("end-to-end latency (ms) mean", "1e9"))
    assert 0 <= latency < 200, values  # measured on /clock: the wall clock is days away from these stamps
    rate = float(values["thermal rate (Hz)"])
    assert 8 <= rate <= 12  # the bag's 10 Hz, on its own clock

    time.sleep(1.5)  # paused: neither /clock nor images; the steady clock says the cameras are stale
    assert loop.wait_for(lambda: "stale" in loop.diagnostics[-1].status[0].message, timeout=3)

    before = len(loop.fused)
    play(loop, clock, stamp, 8)  # resumed where it stopped: bag time moved on by one period only
    assert loop.wait_for(lambda: len(loop.fused) >= before + 6)
    bad = loop.node.stats.bad.counts()
    assert bad.get("stamp_jump", 0) == 0 and not loop.node.intake.stamp_guard._candidates, bad
