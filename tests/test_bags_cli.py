"""``sage-fuse --bag``: topic detection, parameters files, and every bad bag ending in one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sage_core.cameras import Camera
from sage_core.cli.fuse import main  # sage-fuse: its bag mode is found by entry point
from sage_ros.bags.fuse_bag import FUSED_TOPIC
from sage_ros.bags.messages import IMAGE
from sage_ros.bags.recording import BagRecorder, PairStreams, write_pair_bag
from sage_ros.bags.storage import OutputBag
from sage_ros.bags.topics import TopicError, choose_topics
from tests.bag_helpers import on, read_bag, synthetic_pairs


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("sage-fuse: error: ")
    return err[0]


@pytest.fixture
def bag(tmp_path):
    write_pair_bag(tmp_path / "in", synthetic_pairs(3))
    return tmp_path / "in"


def test_cli_fuses_a_bag_with_a_params_file(tmp_path, bag, capsys):
    params = tmp_path / "rig.yaml"
    params.write_text("/**:\n  ros__parameters:\n    output_encoding: rgb8\n    use_sim_time: false\n")
    assert main(["--bag", str(bag), "--out", str(tmp_path / "out"), "--params", str(params), "--device", "cpu",
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "3 fused pairs" in captured.out and "pairs/s" in captured.out
    assert "ignoring parameters the fusion node does not declare: use_sim_time" in captured.err
    fused = on(read_bag(tmp_path / "out"), FUSED_TOPIC)
    assert [m.msg.encoding for m in fused] == ["rgb8"] * 3
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_an_existing_output_is_refused_then_replaced_with_overwrite(tmp_path, bag, capsys):
    (tmp_path / "out").mkdir()
    assert main(["--bag", str(bag), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    assert "exists already; choose another output or pass --overwrite" in one_error_line(capsys)
    assert main(["--bag", str(bag), "--out", str(tmp_path / "out"), "--overwrite", "--device", "cpu",
                 "--quiet"]) == 0
    assert len(on(read_bag(tmp_path / "out"), FUSED_TOPIC)) == 3


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_truncated_bag_ends_in_one_line(tmp_path, capsys, storage):
    write_pair_bag(tmp_path / "in", synthetic_pairs(3), storage=storage)
    (data,) = [p for p in (tmp_path / "in").iterdir() if p.suffix in (".mcap", ".db3")]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    assert main(["--bag", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert f"{tmp_path / 'in'}: not a readable rosbag2 bag" in line
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("content,words", [(None, "no such bag"), (b"not a bag", "Unrecognized storage format")])
def test_a_missing_or_foreign_file_ends_in_one_line(tmp_path, capsys, content, words):
    source = tmp_path / "in.txt"
    if content is not None:
        source.write_bytes(content)
    assert main(["--bag", str(source), "--out", str(tmp_path / "out")]) == 2
    assert words in one_error_line(capsys)


def test_a_missing_topic_is_named_with_the_image_topics(bag, tmp_path, capsys):
    assert main(["--bag", str(bag), "--out", str(tmp_path / "out"), "--thermal-topic", "/flir/image"]) == 2
    line = one_error_line(capsys)
    assert "thermal topic /flir/image is not in the bag; its image topics: " in line
    assert "/rgb/image (sensor_msgs/msg/Image, 3 messages)" in line


def test_a_topic_of_the_wrong_type_is_refused(tmp_path, capsys):
    with OutputBag(tmp_path / "in") as out:
        conn = out.add_topic("/rgb/camera_info", "sensor_msgs/msg/CameraInfo")
        out.write(conn, 1, b"\x00\x01\x00\x00" + b"\x00" * 60)
    assert main(["--bag", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--rgb-topic",
                 "/rgb/camera_info"]) == 2
    assert "rgb topic /rgb/camera_info has type sensor_msgs/msg/CameraInfo; expected sensor_msgs/msg/Image or " \
           "sensor_msgs/msg/CompressedImage" in one_error_line(capsys)


def test_ambiguous_topics_are_listed(tmp_path, capsys):
    pairs = synthetic_pairs(2)
    write_pair_bag(tmp_path / "in", pairs, PairStreams(thermal_topic="/lwir/image", rgb_topic="/rgb/image"))
    with OutputBag(tmp_path / "two") as out:
        recorder = BagRecorder(out)
        for topic in ("/boson/image_raw", "/flir/image_raw", "/camera/image_raw"):
            recorder.image(topic, pairs[0][2], "bgr8", 1, "f", 1)
    assert main(["--bag", str(tmp_path / "two"), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert "cannot tell which image topic is the thermal camera (thermal-like: /boson/image_raw, /flir/image_raw)" \
        in line and "pass --thermal-topic and --rgb-topic" in line


def test_a_bad_parameters_file_ends_in_one_line(bag, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("sage_fusion:\n  ros__parameters:\n    slop: -1.0\n")
    assert main(["--bag", str(bag), "--out", str(tmp_path / "out"), "--params", str(params)]) == 2
    assert f"{params}: parameter slop: -1.0 is outside [0.0, 10.0]" in one_error_line(capsys)


TOPICS = {"/thermal/image": (IMAGE, 3), "/rgb/image": (IMAGE, 3), "/rgb/camera_info": ("x/CameraInfo", 3)}


@pytest.mark.parametrize("topics,thermal,rgb", [
    ({"/boson/image_raw": (IMAGE, 1), "/camera/color/image_raw": (IMAGE, 1)}, "/boson/image_raw",
     "/camera/color/image_raw"),
    ({"/thermal_camera/image": (IMAGE, 1), "/usb_cam/image_raw": (IMAGE, 1)}, "/thermal_camera/image",
     "/usb_cam/image_raw"),
    ({"/a/image": (IMAGE, 1), "/b/image": (IMAGE, 1)}, "/a/image", "/b/image"),  # by the first encoding
    # A camera recorded raw and compressed counts once, as raw:
    ({"/ir/image": (IMAGE, 1), "/ir/image/compressed": ("sensor_msgs/msg/CompressedImage", 1),
      "/rgb/image/compressed": ("sensor_msgs/msg/CompressedImage", 1)}, "/ir/image", "/rgb/image/compressed"),
])
def test_topics_are_detected_by_name_then_by_encoding(topics, thermal, rgb):
    chosen = choose_topics(topics, None, None, {"/a/image": "mono16", "/b/image": "bgr8"}.get)
    assert (chosen[Camera.THERMAL].name, chosen[Camera.RGB].name) == (thermal, rgb)


def test_one_given_topic_leaves_the_other_to_detection():
    chosen = choose_topics(TOPICS, None, "/rgb/image", lambda t: "")
    assert chosen[Camera.THERMAL].name == "/thermal/image" and chosen[Camera.RGB].name == "/rgb/image"
    with pytest.raises(TopicError, match="both /x"):
        choose_topics({"/x": (IMAGE, 1)}, "/x", "/x", lambda t: "")


def test_help_describes_both_modes_and_python_m_runs_each():
    done = subprocess.run([sys.executable, "-m", "sage_core.cli.fuse", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--ir" in done.stdout and "--bag" in done.stdout
    assert "rosbag2" in done.stdout
    bag_only = subprocess.run([sys.executable, "-m", "sage_ros.bags", "--help"], capture_output=True, text=True,
                              timeout=120)
    assert bag_only.returncode == 0 and "--bag" in bag_only.stdout and "--ir" not in bag_only.stdout


def test_image_mode_still_answers_as_before(tmp_path, capsys):
    assert main(["--ir", str(tmp_path / "none"), "--vis", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "none" in one_error_line(capsys)


def test_nothing_fused_is_exit_status_one_with_the_counts(tmp_path, capsys):
    with OutputBag(tmp_path / "in") as out:
        recorder = BagRecorder(out)
        for i in range(3):  # thermal and rgb 1 s apart: nothing pairs within the default slop
            recorder.image("/thermal/image", np.zeros((64, 64), np.uint8), "mono8", (i + 1) * 10**9, "t", i)
            recorder.image("/rgb/image", np.zeros((64, 64, 3), np.uint8), "bgr8", (i + 1) * 10**9 + 5 * 10**8, "r", i)
    assert main(["--bag", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "unpaired messages 6" in captured.out and "nothing fused" in captured.err
