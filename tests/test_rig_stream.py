"""A rig with a baseline without ROS: its parameters, the depth images paired with the rgb frames
(stream/depth_pairing.py), and a recorded RGB-D rig fused per pixel by the bag tool as the node would."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sage_core.camera_info_file import camera_info_yaml
from sage_core.cameras import Camera
from sage_core.errors import FusionInputError
from sage_core.fuser import Fuser
from sage_core.lens import LensModel
from sage_core.options import InferenceOptions
from sage_ros.bags.fuse_bag import FUSED_TOPIC, fuse_bag, report
from sage_ros.bags.messages import CAMERA_INFO, camera_info_message
from sage_ros.bags.recording import BagRecorder
from sage_ros.bags.storage import OutputBag
from sage_ros.bags.topics import TopicError, choose_depth_topic, choose_topics
from sage_ros.parameters import FusionParams, ParameterError, from_values
from sage_ros.parameters_yaml import render_yaml
from sage_ros.stream.depth_pairing import DepthMatcher
from sage_ros.stream.frames import Frame, Job
from sage_ros.stream.lenses import CameraLenses
from sage_ros.stream.rig_registration import RigRegistration
from tests.bag_helpers import fusion, on, read_bag
from tests.rig_helpers import near_person

MS = 1_000_000
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"


@pytest.mark.parametrize("values, expected", [
    ({"use_depth": True}, "use_depth: per-pixel registration needs the rig's geometry"),
    ({"rig_translation": [0.05, 0.0, 0.0], "homography": [1.0, 0, 0, 0, 1, 0, 0, 0, 1]}, "homography and the rig"),
    ({"rig_translation": [0.05, 0.0, 0.0], "auto_align": True}, "auto_align and the rig"),
    ({"rig_translation": [1.5, 0.0, 0.0]}, "baseline 1.500 m"),
    ({"rig_translation": [0.05, 0.0, 0.0], "rig_rotation": [0.0, 0.0, 0.5, 0.5]}, "unit quaternion"),
    ({"rig_translation": [0.05, 0.0]}, "expected 3 numbers"),
    ({"rig_translation": [0.05, 0.0, 0.0], "rig_file": "rig.yaml"}, "give the rig one way"),
    ({"rig_translation": [0.05, 0.0, 0.0], "use_depth": True, "reference_camera": "thermal"}, "reference_camera: rgb"),
    ({"registration_distance": 0.0}, "outside [0.1, inf]"),
    ({"registration_distance": -math.inf}, "finite"),
])
def test_rig_parameters_are_checked_together(values, expected):
    with pytest.raises(ParameterError, match=expected.replace("[", "\\[").replace("(", "\\(")):
        from_values(values)


def test_the_far_plane_is_the_default_and_written_as_yaml_infinity():
    assert FusionParams().registration_distance == math.inf
    assert "    registration_distance: .inf\n" in render_yaml()
    assert from_values({"registration_distance": 4.0, "rig_translation": [0.05, 0.0, 0.0]}).has_rig


def test_a_missing_rig_file_is_one_parameter_error():
    with pytest.raises(ParameterError, match="parameter rig_file: nowhere.yaml: cannot read the rig file"):
        RigRegistration(FusionParams(rig_file="nowhere.yaml"))


def frame(value: int, size=(8, 6)) -> Frame:
    return Frame(np.full(size[::-1], value, np.uint16), None, "16UC1")


class Matcher:
    """A DepthMatcher with recording callbacks; slop 20 ms, stale after 1 s."""

    def __init__(self, rgb_size=(8, 6)) -> None:
        self.ready: list[Job] = []
        self.bad: list[tuple[str, str]] = []
        self.matcher = DepthMatcher(0.02, 10, 1.0, self.ready.append, lambda s, k, m: self.bad.append((s, k)),
                                    lambda: rgb_size)

    def depths(self) -> list[int | None]:
        return [None if job.depth is None else int(job.depth.array[0, 0]) for job in self.ready]


def test_a_pair_waits_for_its_depth_and_takes_the_nearest_within_slop():
    m = Matcher()
    m.matcher.add_depth(frame(1), 95 * MS, 95 * MS)
    m.matcher.add_pair(Job({}), 100 * MS, 101 * MS)  # depth live, newest depth older than the rgb frame: waits
    assert m.ready == []
    m.matcher.add_depth(frame(2), 101 * MS, 103 * MS)  # stamped after the rgb frame: the choice is made
    assert m.depths() == [2]
    m.matcher.add_pair(Job({}), 200 * MS, 201 * MS)
    m.matcher.add_depth(frame(3), 230 * MS, 232 * MS)  # 30 ms off: outside the slop
    assert m.depths() == [2, None]
    assert (m.matcher.with_depth, m.matcher.without_depth) == (1, 1)


def test_a_late_or_stale_depth_does_not_hold_pairs_back_and_the_order_stays():
    m = Matcher()
    m.matcher.add_pair(Job({}), 100 * MS, 100 * MS)  # no depth ever: not live, goes at once
    assert m.depths() == [None]
    m.matcher.add_depth(frame(1), 100 * MS, 105 * MS)
    m.matcher.add_pair(Job({}), 300 * MS, 300 * MS)
    m.matcher.add_pair(Job({}), 333 * MS, 310 * MS)
    m.matcher.poll(315 * MS)
    assert len(m.ready) == 1  # the first pair still waits (for at most slop)
    m.matcher.poll(321 * MS)
    assert len(m.ready) == 2  # it waited its 20 ms; the second, made at 310 ms, waits on
    m.matcher.poll(331 * MS)
    assert m.depths() == [None, None, None]
    m.matcher.add_pair(Job({}), 3000 * MS, 3000 * MS)  # depth stale (nothing for 1 s): no wait at all
    assert len(m.ready) == 4


def test_depth_of_another_size_than_the_rgb_images_is_refused_and_counted():
    m = Matcher(rgb_size=(8, 6))
    assert not m.matcher.add_depth(frame(1, size=(4, 3)), 0, 0)
    assert m.bad == [("depth", "depth_size")]
    assert m.matcher.add_depth(frame(1), 0, 0)


def test_depth_topics_are_never_cameras_and_the_aligned_one_is_the_depth():
    topics = {"/camera/color/image_raw": ("sensor_msgs/msg/Image", 5), "/boson/image_raw": ("sensor_msgs/msg/Image", 5),
              DEPTH_TOPIC: ("sensor_msgs/msg/Image", 5), "/camera/depth/image_rect_raw": ("sensor_msgs/msg/Image", 5)}
    chosen = choose_topics(topics, None, None, lambda name: "")
    assert {camera.label: topic.name for camera, topic in chosen.items()} == {
        "thermal": "/boson/image_raw", "rgb": "/camera/color/image_raw"}
    assert choose_depth_topic(topics, None).name == DEPTH_TOPIC
    del topics[DEPTH_TOPIC]
    assert choose_depth_topic(topics, None).name == "/camera/depth/image_rect_raw"
    with pytest.raises(TopicError, match="depth topic /nope is not in the bag"):
        choose_depth_topic(topics, "/nope")


@pytest.fixture(scope="module")
def fuser():
    return Fuser.from_options(InferenceOptions(device="cpu", backend="torch"))


def write_rig_bag(path, frames_list, bad_depths=()) -> None:
    """thermal, rgb (with camera_info each) and the aligned depth (with its camera_info) at 10 Hz; ``bad_depths``:
    (encoding, array) depth messages sent before the good ones."""
    start = 1_700_000_000_000_000_000
    with OutputBag(path) as bag:
        recorder = BagRecorder(bag)
        infos = {name: recorder.connection(name, CAMERA_INFO) for name in
                 ("/thermal/camera_info", "/rgb/camera_info", "/camera/aligned_depth_to_color/camera_info")}
        for index, (encoding, array) in enumerate(bad_depths):
            recorder.image(DEPTH_TOPIC, array, encoding, start - (index + 1) * MS, "rgb_optical", start - 50 * MS)
        for index, frames in enumerate(frames_list):
            stamp = start + index * 100 * MS
            for topic, camera in (("/thermal/camera_info", "thermal"), ("/rgb/camera_info", "rgb"),
                                  ("/camera/aligned_depth_to_color/camera_info", "rgb")):
                bag.write(infos[topic], stamp, camera_info_message(frames.camera_info(camera), stamp, camera))
            recorder.image("/rgb/image", frames.rgb, "bgr8", stamp, "rgb_optical", stamp + 10 * MS)
            recorder.image("/thermal/image", frames.thermal, "mono16", stamp + 2 * MS, "thermal_optical",
                           stamp + 12 * MS)
            recorder.image(DEPTH_TOPIC, frames.depth, "16UC1", stamp + 1 * MS, "rgb_optical", stamp + 25 * MS)


def test_a_recorded_rgbd_rig_is_fused_per_pixel_as_the_pipeline_registers_it(tmp_path, fuser):
    frames_list = [near_person(seed) for seed in range(3)]
    bad = [("mono8", np.zeros((120, 160), np.uint8)), ("16UC1", np.zeros((60, 80), np.uint16))]
    write_rig_bag(tmp_path / "in", frames_list, bad)
    params = from_values({**frames_list[0].params, "use_depth": True})
    offline = fusion(fuser, params)
    result = fuse_bag(tmp_path / "in", tmp_path / "out", params, fusion=offline)
    assert (result.published, result.with_depth, result.without_depth) == (3, 3, 0), report(result)
    assert dict(result.bad) == {"depth_encoding": 1, "depth_size": 1}
    assert "3 pairs registered per pixel" in report(result)
    # The same frames through the pipeline, with the rig's aligner for these camera_infos, one after the other.
    expected_fusion = fusion(fuser, params)
    aligner = RigRegistration(params).aligner(full_lenses(frames_list[0]))
    fused = on(read_bag(tmp_path / "out"), FUSED_TOPIC)
    for message, frames in zip(fused, frames_list):
        expected = expected_fusion.pipeline.fuse(frames.thermal, frames.rgb, depth=frames.depth, aligner=aligner)
        assert np.array_equal(message.image(), expected)
    far = expected_fusion.pipeline.fuse(frames_list[-1].thermal, frames_list[-1].rgb, aligner=aligner)
    assert np.abs(far.astype(int) - fused[-1].image().astype(int)).mean() > 1.0  # the depth made a difference


def test_the_rig_needs_both_intrinsics_from_camera_info_or_the_rig_file(tmp_path):
    frames = near_person()
    params = from_values(frames.params)
    lenses = CameraLenses(True, lambda *args: None)
    with pytest.raises(FusionInputError, match="the rig needs the thermal camera's intrinsics: no camera_info"):
        RigRegistration(params).aligner(lenses)
    lenses.offer(Camera.THERMAL, SimpleNamespace(**{**frames.camera_info("thermal"), "k": [0.0] * 9}))
    with pytest.raises(FusionInputError, match="thermal/camera_info: no camera matrix"):
        RigRegistration(params).aligner(lenses)
    # A rig file naming camera_info files: the intrinsics of a camera that publishes none.
    for camera in ("thermal", "rgb"):
        info = frames.camera_info(camera)
        lens = LensModel(info["width"], info["height"], "plumb_bob", info["d"], info["k"], info["r"], info["p"])
        (tmp_path / f"{camera}.yaml").write_text(camera_info_yaml(lens, camera))
    (tmp_path / "rig.yaml").write_text("translation: [0.06, 0, 0]\nrotation: [0, 0, 0, 1]\n"
                                       "thermal_camera_info: thermal.yaml\nrgb_camera_info: rgb.yaml\n")
    rig = RigRegistration(FusionParams(rig_file=str(tmp_path / "rig.yaml")))
    from_file = CameraLenses(True, lambda *args: None)
    rig.offer_file_lenses(from_file)
    assert np.allclose(rig.aligner(from_file).plane, RigRegistration(params).aligner(full_lenses(frames)).plane)


def full_lenses(frames) -> CameraLenses:
    lenses = CameraLenses(True, lambda *args: None)
    for camera in Camera:
        lenses.offer(camera, SimpleNamespace(**frames.camera_info(camera.label)))
    return lenses


def test_a_depth_image_is_rectified_with_the_rgb_lens_never_blended():
    frames = near_person()
    lenses = CameraLenses(True, lambda *args: None)
    lenses.offer(Camera.RGB, SimpleNamespace(**{**frames.camera_info("rgb"), "d": [-0.2, 0.05, 0.0, 0.0, 0.0]}))
    job = lenses.rectify(Job({Camera.RGB: Frame(frames.rgb, None, "bgr8")}, Frame(frames.depth, None, "16UC1")))
    rectified = job.depth.array
    assert rectified.dtype == np.uint16 and rectified.shape == frames.depth.shape
    assert np.isin(rectified, frames.depth).all()  # every value is one the camera measured (or 0 outside)
    assert not np.array_equal(rectified, frames.depth)
    assert np.array_equal(job.frames[Camera.RGB].array, lenses.rectifier(Camera.RGB)(frames.rgb))
