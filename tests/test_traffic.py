"""The soak and benchmark machinery end to end, briefly: cameras in their own process with every fault kind
mixed in, the node in its own, and every bad message counted by kind while the good pairs keep flowing."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")
pytest.importorskip("psutil", reason="psutil not installed (pip install -e .[dev])")

from sage_ros.harness.traffic import FAULTS, run_live

pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


def test_faults_are_counted_by_kind_and_fusion_goes_on(tmp_path):
    run = run_live(160, 128, rate=20.0, seconds=3.0, node_params={"backend": "torch", "warmup": False},
                   fault_every=2, namespace="/traffic_test", log_path=tmp_path / "node.log")
    assert run.sent >= 50 and run.received >= 0.8 * run.sent, (run.sent, run.received)
    counted = {k[len("bad messages: "):]: int(v) for k, v in run.diagnostics.items() if k.startswith("bad messages: ")}
    assert set(run.faults) == set(FAULTS) and all(run.faults[k] >= 3 for k in FAULTS)
    # Best-effort transport may lose a message now and then: every kind counted, none counted twice.
    assert all(1 <= counted.get(k, 0) <= run.faults[k] for k in FAULTS), (counted, run.faults)
    assert sum(counted.values()) >= 0.9 * sum(run.faults.values())
    assert run.samples and all(s.rss_mb > 50 for s in run.samples)
