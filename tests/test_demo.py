"""sage-demo end to end: player -> fusion node process -> recorder, over DDS on loopback."""

import json

import cv2
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from sage_ros.demo import main  # noqa: E402


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


def test_demo_reports_a_bad_weights_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert main(["--frames", "2", "--size", "96x96", "--weights", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "fusion node exited with status 2" in err[0]
    assert "bad.pt: not a readable PyTorch checkpoint" in err[0]
