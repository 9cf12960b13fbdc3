"""Stamp and format guards of each camera stream (no ROS), including property-based fuzzing of the pairer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sage_core.cameras import Camera
from sage_ros.stream.guards import FormatGuard, StampGuard
from sage_ros.stream.pairing import ApproximateTimePairer

T, R = Camera.THERMAL, Camera.RGB
MS, S, DAY = 1_000_000, 1_000_000_000, 86_400 * 1_000_000_000


def test_future_stamps_are_rejected_and_the_stream_recovers():
    guard, now = StampGuard(max_jump_s=1.0, adopt_after=5), 0
    for i in range(10):  # both cameras at 30 Hz
        now = i * 33 * MS
        assert guard.check(T, 1000 * S + now, now).accepted and guard.check(R, 1000 * S + now, now).accepted
    verdicts = []
    for i in range(10, 20):  # ten thermal frames a day ahead
        now = i * 33 * MS
        verdicts.append(guard.check(T, 1000 * S + DAY + now, now))
        assert guard.check(R, 1000 * S + now, now).accepted
    assert [v.kind for v in verdicts[:4]] == ["stamp_jump"] * 4 and not any(v.accepted for v in verdicts[:4])
    assert verdicts[4].adopted  # five consistent: taken as the thermal camera's new clock
    back = [guard.check(T, 1000 * S + i * 33 * MS, i * 33 * MS) for i in range(20, 26)]
    assert all(v.accepted for v in back)  # back in step with the rgb camera: accepted at once


def test_stamp_zero_is_never_valid_and_a_pause_is_fine():
    guard = StampGuard()
    assert guard.check(T, 0, 0).kind == "invalid_stamp"
    assert guard.check(T, 5 * S, 0).accepted
    assert guard.check(T, 65 * S, 60 * S).accepted  # a minute without frames, stamps advanced like the clock


def test_a_camera_may_jump_to_where_the_other_camera_is():
    guard = StampGuard()
    guard.check(R, 500 * S, 0)
    guard.check(T, 100 * S, 0)
    assert guard.check(T, 500 * S + 10 * MS, 10 * MS).accepted  # agrees with the rgb clock


def test_format_change_is_rejected_then_adopted():
    guard = FormatGuard(adopt_after=3)
    assert guard.check(T, "mono16", 640, 512).accepted
    one_off = guard.check(T, "32FC1", 640, 512)
    assert not one_off.accepted and one_off.kind == "encoding_change"
    assert guard.check(T, "mono16", 640, 512).accepted
    assert [guard.check(T, "mono16", 320, 256).kind for _ in range(3)] == ["size_change"] * 3
    assert guard.format_of(T) == ("mono16", 320, 256)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([T, R]), st.integers(min_value=-10 * S, max_value=10 * DAY)),
                max_size=120),
       st.integers(min_value=1, max_value=20), st.floats(min_value=0.0, max_value=0.2))
def test_pairer_invariants_under_arbitrary_stamps(events, queue_size, slop):
    """Any sequence of stamps (jumps, duplicates, reordering): never raises, queues stay bounded, pairs are within
    slop and one of each camera."""
    pairs = []
    pairer = ApproximateTimePairer(queue_size, slop, lambda t, r: pairs.append((t, r)))
    for camera, stamp in events:
        pairer.add(camera, stamp, (camera, stamp))
        assert all(len(q) <= queue_size for q in pairer.queues)
    for thermal, rgb in pairs:
        assert thermal.item[0] is T and rgb.item[0] is R
        assert abs(thermal.stamp_ns - rgb.stamp_ns) <= round(slop * 1e9)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([T, R]), st.integers(min_value=-DAY, max_value=10 * DAY),
                          st.integers(min_value=0, max_value=2 * S)), max_size=80))
def test_stamp_guard_never_raises_and_only_accepts_positive_stamps(events):
    guard, now = StampGuard(max_jump_s=0.5, adopt_after=3), 0
    for camera, stamp, step in events:
        now += step
        verdict = guard.check(camera, stamp, now)
        assert verdict.accepted == (verdict.kind in ("", "clock_jump"))
        assert not (verdict.accepted and stamp <= 0)
