"""Integration tests of the fusion node: real rclpy nodes over DDS on loopback (see conftest.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo

from sage_core.synthetic import SyntheticScene
from sage_ros.parameters import ParameterError
from tests.ros_harness import Loopback, make_image

W, H = 80, 64
pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


SECOND = 1_000_000_000
SCENE = SyntheticScene(W, H, seed=5).frame(1.0)


@pytest.fixture()
def loop(request):
    params = getattr(request, "param", {})
    harness = Loopback(**params)
    yield harness
    harness.close()


def thermal_msg(stamp_ns: int, encoding: str = "mono16", frame_id: str = "thermal_optical"):
    if encoding in ("mono16", "16UC1"):
        array = SCENE.thermal_mono16
    elif encoding == "32FC1":
        array = (SCENE.thermal * 40.0 + 10.0).astype(np.float32)  # degrees Celsius, say
    else:
        array = SCENE.thermal_mono8
    return make_image(array, encoding, stamp_ns, frame_id)


def rgb_msg(stamp_ns: int, encoding: str = "bgr8", frame_id: str = "rgb_optical", bgr: np.ndarray | None = None):
    bgr = SCENE.visible if bgr is None else bgr
    array = {"bgr8": bgr, "rgb8": bgr[..., ::-1], "bgra8": np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]),
             "rgba8": np.dstack([bgr[..., ::-1], np.full(bgr.shape[:2], 255, np.uint8)]),
             "mono8": bgr[..., 1]}[encoding]
    return make_image(np.ascontiguousarray(array), encoding, stamp_ns, frame_id)


def test_pair_in_gives_one_fused_image_with_the_reference_header(loop):
    stamp = 10 * SECOND + 123
    loop.send(thermal_msg(stamp + 5_000_000), rgb_msg(stamp))
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    out = loop.fused[0]
    assert (out.width, out.height, out.encoding) == (W, H, "bgr8")
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (10, 123)
    assert out.header.frame_id == "rgb_optical"
    image = np.frombuffer(bytes(out.data), np.uint8).reshape(H, W, 3)
    hot = SCENE.thermal > 0.8
    assert image.mean(axis=2)[hot].mean() > image.mean(axis=2)[~hot].mean() + 40  # warm targets stand out
    time.sleep(0.3)
    assert len(loop.fused) == 1


@pytest.mark.parametrize("thermal_encoding", ["mono8", "8UC1", "mono16", "16UC1", "32FC1"])
def test_every_thermal_encoding(loop, thermal_encoding):
    loop.send(thermal_msg(SECOND, thermal_encoding), rgb_msg(SECOND))
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    assert loop.diagnostic_values().get("bad messages", "0") == "0"


@pytest.mark.parametrize("loop", [{"adopt_after_frames": 1}], indirect=True)  # each message switches encoding
def test_every_rgb_encoding_gives_the_same_colours(loop):
    results = {}
    for index, encoding in enumerate(["bgr8", "rgb8", "bgra8", "rgba8"]):
        stamp = (index + 1) * SECOND
        loop.send(thermal_msg(stamp, "mono8"), rgb_msg(stamp, encoding))
        assert loop.wait_for(lambda n=index + 1: len(loop.fused) == n)
        results[encoding] = np.frombuffer(bytes(loop.fused[-1].data), np.uint8)
    for encoding in ("rgb8", "bgra8", "rgba8"):
        assert np.array_equal(results[encoding], results["bgr8"]), encoding
    loop.send(thermal_msg(9 * SECOND, "mono8"), rgb_msg(9 * SECOND, "mono8"))
    assert loop.wait_for(lambda: len(loop.fused) == 5)
    gray = np.frombuffer(bytes(loop.fused[-1].data), np.uint8).reshape(H, W, 3)
    assert (gray[..., 0] == gray[..., 1]).all()  # gray camera in, gray fused out


@pytest.mark.parametrize("loop", [{"output_encoding": "mono8", "reference_camera": "thermal"}], indirect=True)
def test_mono8_output_and_thermal_reference(loop):
    loop.send(thermal_msg(3 * SECOND + 7), rgb_msg(3 * SECOND))
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    out = loop.fused[0]
    assert out.encoding == "mono8" and out.step == W
    assert out.header.frame_id == "thermal_optical" and out.header.stamp.nanosec == 7


@pytest.mark.parametrize("loop", [{"slop": 0.02}], indirect=True)
def test_pairs_outside_slop_are_not_fused(loop):
    loop.send(thermal_msg(SECOND), rgb_msg(SECOND + 50_000_000))  # 50 ms apart > 20 ms slop
    time.sleep(0.5)
    assert loop.fused == []
    loop.send(thermal_msg(2 * SECOND), rgb_msg(2 * SECOND + 10_000_000))  # 10 ms: pairs
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    assert loop.fused[0].header.stamp.sec == 2
    assert loop.wait_for(lambda: loop.diagnostic_values().get("unpaired messages") == "2", timeout=3)


@pytest.mark.parametrize("loop", [{"slop": 0.02}], indirect=True)
def test_slop_changes_at_run_time(loop):
    result = loop.node.set_parameters([Parameter("slop", value=0.1)])[0]
    assert result.successful
    loop.send(thermal_msg(SECOND), rgb_msg(SECOND + 50_000_000))
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    rejected = loop.node.set_parameters([Parameter("thermal_normalization", value="magic")])[0]
    assert not rejected.successful and "magic" in rejected.reason
    read_only = loop.node.set_parameters([Parameter("device", value="cpu")])[0]
    assert not read_only.successful


@pytest.mark.parametrize("loop", [{"stale_timeout": 0.3, "on_stale": "passthrough"}], indirect=True)
def test_stale_camera_passthrough_warn_and_recovery(loop):
    for index in range(8):  # rgb alone for ~0.8 s
        loop.send(rgb=rgb_msg(SECOND + index * 100_000_000))
        time.sleep(0.1)
    assert loop.wait_for(lambda: len(loop.fused) >= 2)
    passthrough = np.frombuffer(bytes(loop.fused[-1].data), np.uint8).reshape(H, W, 3)
    assert np.abs(passthrough.astype(int) - SCENE.visible.astype(int)).max() <= 1  # the rgb image itself
    assert loop.wait_for(lambda: loop.diagnostics and loop.diagnostics[-1].status[0].level == DiagnosticStatus.WARN
                         and "thermal stale" in loop.diagnostics[-1].status[0].message, timeout=3)
    count, levels = len(loop.fused), []
    for index in range(15):  # thermal returns: fusion resumes, the warning clears
        stamp = 5 * SECOND + index * 100_000_000
        loop.send(thermal_msg(stamp), rgb_msg(stamp))
        time.sleep(0.1)
        levels.append(loop.diagnostics[-1].status[0].level)
    assert any(m.header.stamp.sec == 5 for m in loop.fused[count:])
    assert levels[-1] == DiagnosticStatus.OK


@pytest.mark.parametrize("loop", [{"stale_timeout": 0.3, "on_stale": "drop"}], indirect=True)
def test_stale_camera_drop_policy_publishes_nothing(loop):
    for index in range(6):
        loop.send(rgb=rgb_msg(SECOND + index * 100_000_000))
        time.sleep(0.1)
    assert loop.wait_for(lambda: loop.diagnostics and "thermal stale" in loop.diagnostics[-1].status[0].message,
                         timeout=3)
    assert loop.fused == []


def test_bad_messages_are_counted_and_the_node_survives(loop):
    good_thermal = thermal_msg(SECOND)
    wrong_length = thermal_msg(SECOND)
    wrong_length.data = bytes(len(good_thermal.data) - 2)
    unknown = rgb_msg(SECOND)
    unknown.encoding = "yuv422"
    empty = rgb_msg(SECOND)
    empty.height, empty.width, empty.step, empty.data = 0, 0, 0, b""
    nan = thermal_msg(SECOND, "32FC1")
    values = np.frombuffer(bytes(nan.data), np.float32).copy()
    values[3] = np.nan
    nan.data = values.tobytes()
    for thermal, rgb in ((wrong_length, None), (None, unknown), (None, empty), (nan, None)):
        loop.send(thermal, rgb)
    loop.send(thermal_msg(2 * SECOND), rgb_msg(2 * SECOND))  # a good pair fixes the stream sizes
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    resized = make_image(np.zeros((H // 2, W // 2), np.uint16), "mono16", 3 * SECOND, "thermal_optical")
    loop.send(resized, rgb_msg(3 * SECOND))
    loop.send(thermal_msg(4 * SECOND), rgb_msg(4 * SECOND))
    assert loop.wait_for(lambda: len(loop.fused) == 2)
    expected = {"bad messages: data_length": "1", "bad messages: encoding": "1", "bad messages: zero_size": "1",
                "bad messages: non_finite": "1", "bad messages: size_change": "1", "bad messages": "5"}
    assert loop.wait_for(lambda: all(loop.diagnostic_values().get(k) == v for k, v in expected.items()), timeout=3), \
        loop.diagnostic_values()


@pytest.mark.parametrize("loop", [{"output_width": W // 2, "output_height": H // 2}], indirect=True)
def test_camera_info_is_rescaled_with_the_output(loop):
    info = CameraInfo(width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[100.0, 0, 39.5, 0, 100.0, 31.5, 0, 0, 1], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                      p=[100.0, 0, 39.5, 0, 0, 100.0, 31.5, 0, 0, 0, 1, 0])
    info.header.frame_id = "rgb_optical"
    assert loop.wait_for(lambda: loop.node.count_subscribers("/test/rgb/camera_info") > 0)
    loop.rgb_info_pub.publish(info)
    time.sleep(0.2)
    loop.send(thermal_msg(SECOND), rgb_msg(SECOND))
    assert loop.wait_for(lambda: len(loop.fused) == 1 and len(loop.infos) == 1)
    out, out_info = loop.fused[0], loop.infos[0]
    assert (out.width, out.height) == (W // 2, H // 2) == (out_info.width, out_info.height)
    assert out_info.k[0] == pytest.approx(50.0) and out_info.k[2] == pytest.approx(19.5)
    assert out_info.k[5] == pytest.approx(15.5) and out_info.header.stamp.sec == 1


@pytest.mark.parametrize(
    "params, message",
    [
        ({"slop": -1.0}, "slop"),
        ({"thermal_normalization": "magic"}, "thermal_normalization"),
        ({"output_width": 100}, "output_width and output_height"),
        ({"homography": [1.0, 2.0]}, "homography"),
        ({"thermal_low_percentile": 90.0, "thermal_high_percentile": 10.0}, "thermal_low_percentile"),
        ({"model_file_path": "/nonexistent/model.pt"}, "checkpoint not found"),
        ({"backend": "tensorrt"}, "TensorRT needs a CUDA device"),
        ({"queue_size": "ten"}, "queue_size"),
    ],
)
def test_invalid_parameters_are_rejected_at_start(params, message):
    with pytest.raises(ParameterError, match=message):
        Loopback(**params)


def test_node_runs_an_exported_model(tmp_path):
    import torch

    from sage_core.backends import available
    from sage_core.options import DEFAULT_WEIGHTS
    from tests.helpers import training_main

    out = tmp_path / "model.ts"
    assert training_main("export", ["--weights", str(DEFAULT_WEIGHTS), "--format", "torchscript", "--out",
                                    str(out)]) == 0
    harness = Loopback(model_file_path=str(out), backend="auto")
    try:
        assert harness.node.fuser.backend.name == "torchscript"
        harness.send(thermal_msg(SECOND), rgb_msg(SECOND))
        assert harness.wait_for(lambda: len(harness.fused) == 1)
    finally:
        harness.close()
    with pytest.raises(ParameterError, match="backend onnxruntime cannot run it"):
        Loopback(model_file_path=str(out), backend="onnxruntime")
    if available("onnxruntime", torch.device("cpu"))[0]:
        # engine_file_path: the deprecated Isaac ROS name; a file path means its folder.
        harness = Loopback(backend="onnxruntime", engine_file_path=str(tmp_path / "engines" / "x.plan"))
        try:
            assert harness.node.fuser.backend.name == "onnxruntime"
            assert list((tmp_path / "engines").glob("onnx_*.onnx"))  # a file path means its folder
        finally:
            harness.close()


def test_failing_inference_is_an_error_in_diagnostics_until_a_frame_succeeds(loop):
    real_fuse = loop.node.pipeline.fuse_streams  # what the frame path calls (both streams in one go)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    loop.node.pipeline.fuse_streams = broken
    loop.send(thermal_msg(SECOND), rgb_msg(SECOND))
    assert loop.wait_for(lambda: loop.diagnostics and loop.diagnostics[-1].status[0].level == DiagnosticStatus.ERROR,
                         timeout=3)
    status = loop.diagnostics[-1].status[0]
    assert "inference failing" in status.message and "illegal memory access" in status.message
    assert loop.diagnostic_values()["inference failures"] == "1" and loop.fused == []
    loop.node.pipeline.fuse_streams = real_fuse
    loop.send(thermal_msg(2 * SECOND), rgb_msg(2 * SECOND))
    assert loop.wait_for(lambda: len(loop.fused) == 1)
    assert loop.wait_for(lambda: loop.diagnostics[-1].status[0].level == DiagnosticStatus.OK, timeout=3)


def test_engine_cache_dir_holds_the_built_engines(tmp_path):
    import torch

    from sage_core.backends import available

    if not available("onnxruntime", torch.device("cpu"))[0]:
        pytest.skip("onnxruntime not installed")
    harness = Loopback(backend="onnxruntime", engine_cache_dir=str(tmp_path / "cache"))
    try:
        assert list((tmp_path / "cache").glob("onnx_*.onnx")) and list((tmp_path / "cache").glob("onnx_*.onnx.json"))
    finally:
        harness.close()


@pytest.mark.parametrize("loop", [{"diagnostics_period": 0.1}], indirect=True)
def test_repeated_thermal_frames_are_counted_in_diagnostics(loop):
    """A thermal camera freezing for a flat-field correction sends the same frame again: counted, not a new scene."""
    for index in range(4):  # the same thermal picture four times: three repeats
        stamp = (index + 1) * SECOND
        loop.send(thermal_msg(stamp), rgb_msg(stamp))
        assert loop.wait_for(lambda n=index + 1: len(loop.fused) == n)
    key = "repeated thermal frames (camera freezes)"
    assert loop.wait_for(lambda: loop.diagnostic_values().get(key) == "3", timeout=3), loop.diagnostic_values()
