"""ApproximateTimePairer without ROS: message_filters semantics for two streams."""

import pytest

from sage_core.cameras import Camera
from sage_ros.stream.pairing import ApproximateTimePairer

THERMAL, RGB = Camera.THERMAL, Camera.RGB

MS = 1_000_000


def make(queue_size=5, slop=0.01):
    pairs = []
    pairer = ApproximateTimePairer(queue_size, slop, lambda t, r: pairs.append((t.stamp_ns, r.stamp_ns)))
    return pairer, pairs


def test_pairs_within_slop_only():
    pairer, pairs = make(slop=0.010)
    assert not pairer.add(THERMAL, 100 * MS, "t0")
    assert not pairer.add(RGB, 115 * MS, "r0")  # 15 ms > 10 ms
    assert pairer.add(THERMAL, 120 * MS, "t1")  # 5 ms from r0
    assert pairs == [(120 * MS, 115 * MS)]
    assert pairer.unpaired == 1  # t0 aged out when t1 paired


def test_closest_partner_wins_and_older_ones_are_dropped():
    pairer, pairs = make(slop=0.05)
    for stamp in (100, 133, 166):
        pairer.add(RGB, stamp * MS, stamp)
    pairer.add(THERMAL, 140 * MS, "t")
    assert pairs == [(140 * MS, 133 * MS)]
    assert [e.stamp_ns for e in pairer.queues[RGB]] == [166 * MS]
    assert pairer.unpaired == 1  # rgb 100 can no longer pair


def test_queue_size_bounds_memory_and_counts_losses():
    pairer, pairs = make(queue_size=3, slop=0.001)
    for index in range(10):
        pairer.add(THERMAL, index * 100 * MS, index)
    assert len(pairer.queues[THERMAL]) == 3 and pairer.unpaired == 7 and not pairs


def test_out_of_order_arrivals_stay_sorted():
    pairer, _ = make(slop=0.0)
    for stamp in (300, 100, 200):
        pairer.add(THERMAL, stamp * MS, stamp)
    assert [e.stamp_ns for e in pairer.queues[THERMAL]] == [100 * MS, 200 * MS, 300 * MS]


def test_reconfigure_and_validation():
    pairer, pairs = make(slop=0.0)
    pairer.add(THERMAL, 100 * MS, "t")
    pairer.configure(5, 0.02)
    assert pairer.add(RGB, 110 * MS, "r") and pairs == [(100 * MS, 110 * MS)]
    with pytest.raises(ValueError, match="queue_size"):
        pairer.configure(0, 0.1)
    with pytest.raises(ValueError, match="slop"):
        pairer.configure(3, -1)


def test_steady_streams_with_offset_pair_every_frame():
    pairer, pairs = make(queue_size=2, slop=0.02)
    for index in range(30):  # 30 Hz rgb, thermal 7 ms late
        pairer.add(RGB, index * 33 * MS, index)
        pairer.add(THERMAL, index * 33 * MS + 7 * MS, index)
    assert len(pairs) == 30 and pairer.unpaired == 0


def test_flush_drops_a_cameras_waiting_items_or_those_ahead_of_a_stamp():
    pairer, _ = make(queue_size=10)
    for stamp in (100, 200, 10_000, 20_000):
        pairer.add(THERMAL, stamp * MS, stamp)
    pairer.flush(THERMAL, newer_than_ns=1_000 * MS)
    assert [e.stamp_ns for e in pairer.queues[THERMAL]] == [100 * MS, 200 * MS] and pairer.unpaired == 2
    pairer.flush(THERMAL)
    assert not pairer.queues[THERMAL] and pairer.unpaired == 4
