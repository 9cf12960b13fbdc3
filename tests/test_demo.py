"""sage-demo end to end: player -> fusion node process -> recorder, over DDS on loopback."""

import json

import cv2
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from sage_ros.harness.demo import main

pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


def test_demo_writes_pictures_and_a_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--frames", "8", "--rate", "8", "--size", "160x128", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    node = summary["node_diagnostics"]
    assert summary["sent"] == 8 and summary["received"] >= 1
    # Every pair sent was either fused and delivered, or dropped by the worker for a newer one.
    assert int(node["published"]) == summary["received"]
    assert int(node["published"]) + int(node["dropped pairs"]) + int(node["unpaired messages"]) // 2 == 8
    assert node["bad messages"] == "0"
    frames = sorted((out / "frames").glob("*.png"))
    assert len(frames) == summary["received"]
    mosaic = cv2.imread(str(out / "mosaic.png"))
    assert mosaic is not None and mosaic.shape[1] > 3 * 160
    assert "look at:" in capsys.readouterr().out
    check_recording(out, summary, 8, 160, 128)


def test_demo_reports_a_bad_weights_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert main(["--frames", "2", "--size", "96x96", "--weights", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "fusion node exited with status 2" in err[0]
    assert "bad.pt: not a readable PyTorch checkpoint" in err[0]


def check_recording(out, summary, sent: int, width: int, height: int) -> None:
    """fused.mcap holds what was sent and what came back, readable without ROS (as Foxglove reads it)."""
    import numpy as np

    from sage_ros.bags.messages import TYPESTORE
    from sage_ros.codec.image import image_to_array
    from tests.bag_helpers import read_bag

    messages = read_bag(out / "fused.mcap")
    counts = {topic: sum(m.topic == topic for m in messages) for topic in {m.topic for m in messages}}
    assert counts == {"/sage_demo/thermal/image": sent, "/sage_demo/rgb/image": sent,
                      "/sage_demo/fused/image": summary["received"]}
    fused = [m for m in messages if m.topic == "/sage_demo/fused/image"]
    rgb_stamps = {m.stamp_ns for m in messages if m.topic == "/sage_demo/rgb/image"}
    assert fused and all(m.stamp_ns in rgb_stamps for m in fused)  # the reference camera's stamps
    image = TYPESTORE.deserialize_cdr(fused[0].raw, fused[0].msgtype)
    assert (image.width, image.height, image.encoding) == (width, height, "bgr8")
    assert len(image.data) == width * height * 3
    thermal = [m for m in messages if m.topic == "/sage_demo/thermal/image"][0]
    assert thermal.msg.encoding == "mono16" and image_to_array(thermal.msg).dtype == np.uint16


def test_demo_plays_a_real_clip_through_the_node_in_order(tmp_path):
    """A stretch of a real registered clip (M3SVD, ../shared): every frame comes back, in order, with the RGB
    camera's stamps, and the fused stream's temporal stability can be measured against its inputs."""
    import numpy as np

    from sage_core.eval.temporal import TemporalStability
    from tests.bag_helpers import read_bag
    from tests.conftest import DATASETS, require_shared

    clip = require_shared(DATASETS / "m3svd_clips" / "0111_1716")
    out = tmp_path / "clip"
    assert main(["--data", str(clip), "--frames", "12", "--rate", "6", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    node = summary["node_diagnostics"]
    # Every pair was fused and delivered, or dropped by the worker for a newer one (latency over completeness).
    accounted = summary["received"] + int(node["dropped pairs"]) + int(node["unpaired messages"]) // 2
    assert summary["sent"] == 12 and accounted == 12, summary
    assert summary["received"] >= 10 and node["bad messages"] == "0"
    messages = read_bag(out / "fused.mcap")
    fused = [m for m in messages if m.topic == "/sage_demo/fused/image"]
    rgb = [m.stamp_ns for m in messages if m.topic == "/sage_demo/rgb/image"]
    stamps = [m.stamp_ns for m in fused]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) and set(stamps) <= set(rgb)
    by_stamp = {m.stamp_ns: m.image() for m in messages if m.topic == "/sage_demo/rgb/image"}
    thermal = [m.image() for m in messages if m.topic == "/sage_demo/thermal/image"]
    stability = TemporalStability()
    for message, thermal_image in zip(fused, thermal):
        visible = by_stamp[message.stamp_ns]
        stability.add(visible, {"visible": visible, "thermal": thermal_image, "fused": message.image()})
    scores = stability.summary()
    assert set(scores) == {"visible", "thermal", "fused"} and scores["fused"]["pairs"] == len(fused) - 1
    assert all(np.isfinite(s["warping_error"]) and s["warping_error"] > 0 for s in scores.values())


def test_demo_renders_a_rig_with_a_baseline_and_the_node_registers_it_by_depth(tmp_path):
    from tests.bag_helpers import read_bag

    out = tmp_path / "rig"
    assert main(["--baseline", "0.05", "--depth", "--frames", "4", "--rate", "4", "--size", "160x120",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    node = summary["node_diagnostics"]
    assert summary["received"] >= 1 and node["bad messages"] == "0" and node["inference failures"] == "0"
    assert int(node["pairs fused with depth"]) >= 1  # the first pair may beat the first depth image to the node
    topics = {m.topic for m in read_bag(out / "fused.mcap")}
    assert {"/sage_demo/rgb/depth", "/sage_demo/rgb/camera_info", "/sage_demo/thermal/camera_info"} <= topics
