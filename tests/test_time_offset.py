"""The camera time offset, estimated from image content: found, refused on a static scene, followed in bounded
steps, applied to pairing, and estimated by the bag tool (``--time-offset``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sage_core.cameras import Camera
from sage_core.synthetic import SyntheticScene
from sage_ros.bags.recording import PairStreams, write_pair_bag
from sage_ros.parameters import FusionParams
from sage_ros.stream.intake import FrameIntake
from sage_ros.stream.time_offset import TimeOffsetEstimator, estimate_offset
from tests.bag_helpers import on, read_bag

FPS = 30.0
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def street():
    scene = SyntheticScene(320, 256, seed=3)
    return [scene.frame(i / FPS) for i in range(240)]


def feed(estimator: TimeOffsetEstimator, frames, late_s: float, update_every_s: float = 1.0) -> list:
    """Both streams in stamp order, thermal stamped ``late_s`` late; the estimates of the updates."""
    events = [(i / FPS, Camera.RGB, f.visible) for i, f in enumerate(frames)]
    events += [(i / FPS + late_s, Camera.THERMAL, f.thermal_mono16) for i, f in enumerate(frames)]
    estimates, next_update = [], update_every_s
    for stamp, camera, image in sorted(events, key=lambda e: e[0]):
        estimator.add(camera, round((50 + stamp) * SECOND), image)
        if stamp >= next_update:
            next_update += update_every_s
            estimates.append((estimator.update(), estimator.applied_s))
    return estimates


@pytest.mark.parametrize("late_s", [0.0, 0.1, -0.3])
def test_a_known_offset_is_found_within_a_third_of_a_frame(street, late_s):
    estimate, _ = feed(TimeOffsetEstimator(), street[:150], late_s)[-1]
    assert estimate.offset_s is not None, estimate.reason
    assert abs(estimate.offset_s - late_s) <= 1 / FPS / 3
    assert estimate.confidence > 0.25


def test_a_static_scene_gives_no_estimate(street):
    rng = np.random.default_rng(0)
    still = street[0]
    frames = [SimpleNamespace(
        thermal_mono16=np.clip(still.thermal_mono16 + rng.normal(0, 8, still.thermal_mono16.shape), 0, 65535)
        .astype(np.uint16),
        visible=np.clip(still.visible + rng.normal(0, 2, still.visible.shape), 0, 255).astype(np.uint8))
        for _ in range(120)]
    estimates = feed(TimeOffsetEstimator(follow=True), frames, 0.1)
    assert all(e.offset_s is None for e, _ in estimates)
    assert "static scene" in estimates[-1][0].reason
    assert estimates[-1][1] == 0.0  # never moved


def test_the_applied_offset_follows_in_bounded_steps_only_when_asked(street):
    followed = feed(TimeOffsetEstimator(follow=True, max_step_s=0.05), street[:150], 0.3)
    applied = [0.0] + [a for _, a in followed]
    assert max(abs(b - a) for a, b in zip(applied, applied[1:])) <= 0.05 + 1e-9
    assert applied[-1] > 0.0
    fixed = feed(TimeOffsetEstimator(initial_s=0.02, follow=False), street[:150], 0.3)
    assert {a for _, a in fixed} == {0.02} and fixed[-1][0].offset_s is not None


def test_the_estimate_does_not_depend_on_the_signals_scale():
    rng = np.random.default_rng(1)
    times = np.arange(0, 8, 1 / FPS)
    motion = np.abs(np.convolve(rng.normal(size=(times.size + 20) * 16), np.ones(5) / 5, "same"))[:times.size * 16]
    rgb = motion.reshape(times.size, 16)
    offset, peak, _ = estimate_offset((times + 0.07, 1000.0 * rgb), (times, rgb), 0.5)
    assert abs(offset - 0.07) < 0.003 and peak > 0.99


def test_the_intake_pairs_thermal_stamps_moved_by_the_offset(street):
    def pairs_with(offset_s: float) -> list[tuple[int, int]]:
        """(thermal frame index, rgb frame index) of each pair; thermal is stamped 100 ms late."""
        params = FusionParams(slop=0.02, time_offset=offset_s)
        found = []
        intake = FrameIntake(params, lambda t, r: found.append((t.item.header, r.item.header)), lambda c, f: None,
                             lambda c: False, lambda *a: None, lambda m: None)
        for i, frame in enumerate(street[:20]):
            stamp = 100 * SECOND + round(i / FPS * SECOND)
            intake.accept(Camera.RGB, frame.visible, "bgr8", i, stamp, stamp)
            intake.accept(Camera.THERMAL, frame.thermal_mono16, "mono16", i, stamp + 100_000_000, stamp)
        return found

    known = pairs_with(0.1)
    assert len(known) >= 18 and all(t == r for t, r in known)  # each thermal frame with its own moment
    assert all(r == t + 3 for t, r in pairs_with(0.0))  # without: three frames apart, a double image


def test_the_bag_tool_estimates_and_applies_the_offset(tmp_path, street):
    """Thermal stamped 50 ms late (a frame and a half), slop 10 ms: nothing pairs unless the offset is known."""
    pairs = [(f.thermal_mono16, "mono16", f.visible) for f in street]  # 8 s
    write_pair_bag(tmp_path / "in", pairs, PairStreams(rate_hz=FPS, thermal_offset_ns=50_000_000))
    (tmp_path / "rig.yaml").write_text("/**:\n  ros__parameters:\n    slop: 0.01\n")
    from sage_core.cli.fuse import main

    for name, flag in (("fixed", "0.05"), ("auto", "auto"), ("none", "0")):
        assert main(["--bag", str(tmp_path / "in"), "--out", str(tmp_path / name), "--device", "cpu", "--quiet",
                     "--no-copy", "--params", str(tmp_path / "rig.yaml"), "--time-offset", flag]) in (0, 1)
    fused = {name: len(on(read_bag(tmp_path / name), "/fused/image")) if (tmp_path / name).exists() else 0
             for name in ("fixed", "auto", "none")}
    assert fused["fixed"] >= len(street) - 2 and fused["none"] == 0
    assert fused["auto"] >= len(street) // 2  # the estimate takes over within its first seconds


@pytest.mark.dds
def test_the_node_reports_the_offset_and_takes_a_new_one_at_run_time():
    pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")
    from rclpy.parameter import Parameter

    from tests.ros_harness import Loopback

    loop = Loopback(time_offset=0.02, diagnostics_period=0.1)
    try:
        key = "camera time offset applied (ms)"
        assert loop.wait_for(lambda: loop.diagnostic_values().get(key) == "20.0", timeout=5)
        assert "estimate only" in loop.diagnostic_values()["camera time offset"]
        assert loop.node.set_parameters([Parameter("time_offset", value=-0.01)])[0].successful
        assert loop.wait_for(lambda: loop.diagnostic_values().get(key) == "-10.0", timeout=5)
    finally:
        loop.close()
