"""Hostile input over loopback DDS (issue 11): stamps, extreme frames, run-time parameters, late publishers."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter

from sage_core.cameras import Camera
from sage_core.synthetic import SyntheticScene
from tests.ros_harness import Loopback, make_image

W, H = 80, 64
S, MS, DAY = 1_000_000_000, 1_000_000, 86_400 * 1_000_000_000
pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


SCENE = SyntheticScene(W, H, seed=3).frame(0.5)


@pytest.fixture()
def loop(request):
    harness = Loopback(**getattr(request, "param", {}))
    yield harness
    harness.close()


def now_ns() -> int:
    return time.time_ns()


def pair(loop, thermal_stamp: int, rgb_stamp: int, thermal=None, encoding="mono16") -> None:
    thermal = SCENE.thermal_mono16 if thermal is None else thermal
    loop.send(make_image(thermal, encoding, thermal_stamp, "thermal"),
              make_image(SCENE.visible, "bgr8", rgb_stamp, "rgb"))


def stream(loop, count: int, thermal_offset_ns: int = 0, period: float = 0.033) -> None:
    for _ in range(count):
        stamp = now_ns()
        pair(loop, stamp + thermal_offset_ns, stamp)
        time.sleep(period)


def test_future_stamps_do_not_starve_pairing(loop):
    stream(loop, 5)
    assert loop.wait_for(lambda: len(loop.fused) >= 3)
    for _ in range(10):  # ten thermal frames a day ahead, rgb normal
        stamp = now_ns()
        pair(loop, stamp + DAY, stamp)
        time.sleep(0.033)
    before = len(loop.fused)
    stream(loop, 20)
    assert loop.wait_for(lambda: len(loop.fused) - before >= 10, timeout=5), len(loop.fused) - before  # was 0
    values = loop.diagnostic_values()
    assert loop.wait_for(lambda: int(loop.diagnostic_values().get("bad messages: stamp_jump", "0")) >= 4, timeout=3)
    latencies = [float(v) for k, v in loop.diagnostic_values().items() if k.startswith("end-to-end latency")]
    assert latencies and max(latencies) < 5000, values


def test_stamp_zero_is_counted_and_never_enters_the_statistics(loop):
    stream(loop, 3)
    pair(loop, 0, 0)
    stream(loop, 3)
    assert loop.wait_for(lambda: loop.diagnostic_values().get("bad messages: invalid_stamp") == "2", timeout=3)
    latencies = [float(v) for k, v in loop.diagnostic_values().items() if k.startswith("end-to-end latency")]
    assert max(latencies) < 5000


@pytest.mark.parametrize("loop", [{"slop": 0.01, "stale_timeout": 0.3, "diagnostics_period": 0.1}], indirect=True)
def test_live_cameras_that_never_pair_are_an_error(loop):
    stream(loop, 20, thermal_offset_ns=400 * MS)  # 0.4 s apart: plausible stamps, never within slop
    assert loop.fused == []
    assert loop.wait_for(lambda: loop.diagnostics and loop.diagnostics[-1].status[0].level == DiagnosticStatus.ERROR
                         and "nothing fused" in loop.diagnostics[-1].status[0].message, timeout=3)
    assert "0.400 s apart" in loop.diagnostics[-1].status[0].message


def test_one_extreme_frame_of_another_encoding_is_rejected_and_the_picture_stays(loop):
    stream(loop, 8)
    assert loop.wait_for(lambda: len(loop.fused) >= 3)
    time.sleep(0.2)
    reference = np.frombuffer(bytes(loop.fused[-1].data), np.uint8).astype(float)
    stamp = now_ns()
    pair(loop, stamp, stamp, thermal=np.full((H, W), 3e38, np.float32), encoding="32FC1")
    time.sleep(0.05)
    count = len(loop.fused)
    stream(loop, 2)
    assert loop.wait_for(lambda: len(loop.fused) >= count + 2)
    after = np.frombuffer(bytes(loop.fused[-1].data), np.uint8).astype(float)
    assert np.abs(after - reference).mean() < 2.0  # same contrast at once
    assert loop.wait_for(lambda: loop.diagnostic_values().get("bad messages: encoding_change") == "1", timeout=3)


@pytest.mark.parametrize("name, value, words", [
    ("thermal_fixed_max", float("nan"), "thermal_fixed_max: expected a number (finite)"),
    ("thermal_fixed_min", float("-inf"), "thermal_fixed_min: expected a number (finite)"),
    ("thermal_fixed_max", float("inf"), "thermal_fixed_max: expected a number (finite)"),
    ("slop", "fast", "slop: expected a number"),
    ("queue_size", 2.5, "queue_size: expected an integer"),
    ("thermal_fixed_min", 70000.0, "thermal_fixed_min"),  # above thermal_fixed_max
])
def test_bad_run_time_parameters_are_refused_with_a_reason_and_the_node_keeps_fusing(loop, name, value, words):
    result = loop.node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful and words in result.reason
    stream(loop, 3)
    assert loop.wait_for(lambda: len(loop.fused) >= 2)


def test_a_publisher_that_appears_late_gets_its_full_grace_period(loop):
    class LateTopic:  # a topic whose publisher appears now, long after the node started
        topic_name = "/test/thermal/image"

        def get_publisher_count(self):
            return 1

    health = loop.node.health
    health.is_stale.started = tuple(t - 100 * 10**9 for t in health.is_stale.started)
    loop.node.stats.rates["thermal"].last = None
    health._check_no_data(Camera.THERMAL, LateTopic(), health.params())
    assert Camera.THERMAL not in health._warned_no_data  # no "transport is losing the messages" yet


# ----- the alignment watch (issue 15, part 4) ---------------------------------------------------------

BIG = SyntheticScene(640, 512, seed=1).frame(1.0)
SHIFTED = [1.0, 0.0, 5.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # 5 px off the true (identity) registration


@pytest.mark.parametrize("loop", [{"homography": SHIFTED, "alignment_check_period": 0.25, "alignment_warn_px": 2.0,
                                   "diagnostics_period": 0.1, "crop_to_valid": False}], indirect=True)
def test_a_perturbed_homography_is_reported_within_two_checks(loop):
    for _ in range(15):
        stamp = now_ns()
        loop.send(make_image(BIG.thermal_mono16, "mono16", stamp, "thermal"),
                  make_image(BIG.visible, "bgr8", stamp, "rgb"))
        time.sleep(0.1)
        if loop.node.alignment_watch.status.residual_px is not None:
            break
    watch = loop.node.alignment_watch.status
    assert watch.residual_px is not None and watch.checks <= 2, (watch.checks, watch.reason)
    assert 3.5 < watch.residual_px < 6.5
    assert loop.wait_for(lambda: "misaligned" in loop.diagnostics[-1].status[0].message, timeout=3)
    assert loop.diagnostics[-1].status[0].level == DiagnosticStatus.WARN


def test_auto_align_moves_a_wrong_homography_towards_the_truth_in_bounded_steps():
    from sage_ros.stream.alignment_watch import AlignmentWatch

    updates = []
    watch = AlignmentWatch(0.0, 2.0, np.reshape(SHIFTED, (3, 3)), auto_align=True, checks=2,
                           on_update=lambda h, why: updates.append(h.copy()))
    errors = []
    for _ in range(12):
        watch.offer(BIG.thermal_mono16, BIG.visible)
        status = watch.check_now()
        errors.append(status.residual_px)
    assert updates, errors
    steps = [abs(b[0, 2] - a[0, 2]) for a, b in zip([np.reshape(SHIFTED, (3, 3))] + updates, updates)]
    assert max(steps) <= 2.0 + 1e-6  # bounded: at most 2 px per update
    assert abs(watch.homography[0, 2]) < 2.5 and errors[-1] < errors[0]  # most of the way back to the truth
    blank = np.zeros_like(BIG.visible)
    watch.offer(BIG.thermal_mono16, blank)
    before = watch.homography.copy()
    assert watch.check_now().residual_px == errors[-1] and np.array_equal(watch.homography, before)  # refused


def test_the_alignment_check_runs_at_the_lowest_cpu_priority():
    import os
    import threading

    from sage_ros.stream.alignment_watch import lower_this_threads_priority

    result = {}

    def probe():
        result["lowered"] = lower_this_threads_priority()
        result["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    if not result["lowered"]:
        pytest.skip("per-thread priorities are not supported here")
    assert result["nice"] == 19 and os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19  # that thread only
