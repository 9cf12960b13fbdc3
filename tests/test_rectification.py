"""Lens rectification from a camera_info (sage_core.lens, sage_core.rectification, sage_core.camera_info_file)
and sage-calibrate's --thermal-info / --rgb-info: images distorted with known coefficients come back."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

from sage_core.alignment import AlignmentPlan
from sage_core.camera_info_file import camera_info_yaml, read_camera_info
from sage_core.cli.calibrate import main as calibrate_main
from sage_core.errors import ConfigError, FusionInputError
from sage_core.lens import distort_image, distort_points, undistort_points
from sage_core.rectification import LensModel, Rectifier, RectifierCache
from sage_core.registration import grid_error
from sage_core.registration.simulate import random_rig
from sage_core.synthetic import SyntheticScene
from sage_ros.codec.camera_info import fused_camera_info_fields

W, H = 320, 256
COEFFICIENTS = {"plumb_bob": [-0.3, 0.1, 0.001, -0.001, 0.0],
                "rational_polynomial": [-0.25, 0.08, 0.0005, -0.0004, 0.0, 0.08, 0.01, 0.0],
                "equidistant": [-0.02, 0.004, 0.0, 0.0]}


def camera_matrix(width: int, height: int, hfov_deg: float) -> list[float]:
    f = width / (2 * math.tan(math.radians(hfov_deg) / 2))
    return [f, 0, (width - 1) / 2 + 2.5, 0, f, (height - 1) / 2 - 1.5, 0, 0, 1]


def info(model: str = "plumb_bob", d=None, width: int = W, height: int = H, k=None, r=None, p=None, **extra):
    """A CameraInfo look-alike with numpy arrays, as rclpy's message and rosbags' dataclass have."""
    return SimpleNamespace(width=width, height=height, distortion_model=model,
                           d=np.array(COEFFICIENTS[model] if d is None else d, np.float64),
                           k=np.array(k or camera_matrix(width, height, 75), np.float64),
                           r=np.array(r or np.eye(3).ravel(), np.float64),
                           p=np.array(p or [0.0] * 12, np.float64), binning_x=0, binning_y=0, **extra)


def lens(*args, **kwargs) -> LensModel:
    return LensModel.from_camera_info(info(*args, **kwargs), "test/camera_info")


def pattern(width: int = W, height: int = H) -> np.ndarray:
    """A smooth, structured pinhole image: blurred lines and blobs (bilinear resampling keeps it)."""
    image = np.zeros((height, width), np.float32)
    image[:, ::16] = 1.0
    image[::16, :] = 1.0
    yy, xx = np.mgrid[0:height, 0:width]
    image += 0.5 * (np.sin(xx / 9.0) * np.cos(yy / 13.0) + 1)
    return cv2.GaussianBlur(image / image.max() * 255, (0, 0), 1.5).astype(np.uint8)


def valid_mask(rectifier: Rectifier, model: LensModel, margin: int = 3) -> np.ndarray:
    """Rectified pixels that come from inside the simulated raw image, eroded by ``margin``."""
    ones = distort_image(np.full((H, W), 255, np.uint8), model)
    valid = (rectifier(ones) == 255).astype(np.uint8)
    return cv2.erode(valid, np.ones((2 * margin + 1,) * 2, np.uint8)).astype(bool)


# ----- round trips ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(COEFFICIENTS))
@pytest.mark.parametrize("projection", ["P = [K | 0]", "P unset", "stereo R and P"])
def test_a_distorted_image_comes_back_to_the_pinhole_view(model, projection):
    k = camera_matrix(W, H, 75)
    km = np.asarray(k).reshape(3, 3)
    r, p = None, None
    if projection == "P = [K | 0]":
        p = np.column_stack([km, np.zeros(3)]).ravel().tolist()
    elif projection == "stereo R and P":
        r = cv2.Rodrigues(np.array([0.02, -0.03, 0.01]))[0].ravel().tolist()
        new = km.copy()
        new[0, 0] = new[1, 1] = 0.9 * km[0, 0]
        p = np.column_stack([new, [-0.1 * new[0, 0], 0, 0]]).ravel().tolist()
    camera = lens(model, k=k, r=r, p=p)
    original = pattern()
    raw = distort_image(original, camera)
    rectifier = Rectifier(camera)
    # The rectified view is the pinhole view seen through K' R K^-1 (K' = P[:3, :3], or chosen when P is unset).
    r_used = camera.rotation if p is not None else np.eye(3)
    expected = cv2.warpPerspective(original, rectifier.new_camera_matrix @ r_used @ np.linalg.inv(km), (W, H))
    valid = valid_mask(rectifier, camera)
    assert valid.mean() > 0.6  # where the simulated pinhole view reaches
    error = np.abs(rectifier(raw).astype(float) - expected)[valid]
    assert error.mean() < 2.0 and np.percentile(error, 99) < 12, (error.mean(), np.percentile(error, 99))
    assert np.abs(raw.astype(float) - expected)[valid].mean() > 8  # without rectification: far off


@pytest.mark.parametrize("model", sorted(COEFFICIENTS))
def test_without_p_the_rectified_image_has_no_invalid_border_and_square_pixels(model):
    camera = lens(model)
    rectifier = Rectifier(camera)
    valid = rectifier(np.full((H, W), 255, np.uint8)) == 255
    assert valid.mean() > (0.998 if camera.is_fisheye else 0.9999)
    new, k = rectifier.new_camera_matrix, camera.camera_matrix
    assert new[0, 0] / new[1, 1] == pytest.approx(k[0, 0] / k[1, 1], rel=1e-6)
    assert new[0, 1] == 0 and np.allclose(new[2], [0, 0, 1])


@pytest.mark.parametrize("model", sorted(COEFFICIENTS))
def test_points_undistort_and_distort_back(model):
    camera = lens(model)
    raw = np.array([[0.0, 0.0], [W - 1, H - 1], [12.5, 200.25], [W / 2, H / 2]])
    pinhole = undistort_points(camera, raw)
    assert np.abs(distort_points(camera, pinhole) - raw).max() < 1e-6
    assert np.abs(pinhole[0] - raw[0]).max() > 5  # a corner moves


# ----- the cache: maps built once per camera_info ----------------------------------------------------------------


def copy_of(message: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(**{name: value.copy() if isinstance(value, np.ndarray) else value
                              for name, value in vars(message).items()})


def test_the_cache_builds_maps_once_per_lens_and_again_when_it_changes():
    cache = RectifierCache("thermal/camera_info")
    first = info()
    rectifier = cache.get(first)
    assert isinstance(rectifier, Rectifier) and cache.builds == 1
    for _ in range(5):  # camera_info at the image rate, a new message each time, same content
        assert cache.get(copy_of(first)) is rectifier
    assert cache.builds == 1
    changed = copy_of(first)
    changed.d[0] = -0.2
    other = cache.get(changed)
    assert other is not rectifier and cache.builds == 2
    assert cache.get(copy_of(changed)) is other and cache.builds == 2
    assert cache.get(info(d=[0.0] * 5)) is None and cache.builds == 2


def test_the_cache_refuses_a_bad_camera_info_each_time_without_building():
    cache = RectifierCache("rgb/camera_info")
    bad = info("kannala_brandt", d=[0.1, 0.0, 0.0, 0.0])
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"rgb/camera_info: distortion_model 'kannala_brandt'"):
            cache.get(copy_of(bad))
    assert cache.builds == 0
    assert isinstance(cache.get(info()), Rectifier) and cache.builds == 1


def test_a_rosbags_camera_info_is_read_as_is():
    typesys = pytest.importorskip("rosbags.typesys")
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    types = store.types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="t")
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    message = types["sensor_msgs/msg/CameraInfo"](
        header=header, height=H, width=W, distortion_model="plumb_bob", d=np.array(COEFFICIENTS["plumb_bob"]),
        k=np.array(camera_matrix(W, H, 75)), r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0, roi=roi)
    rectifier = RectifierCache().get(message)
    assert rectifier is not None and rectifier.lens == lens()


# ----- what needs no rectification, and what is refused ----------------------------------------------------------


@pytest.mark.parametrize("model, d", [("plumb_bob", []), ("plumb_bob", [0.0] * 5), ("", [0.0] * 5), ("", []),
                                      ("equidistant", [0.0] * 4), ("some_future_model", [0.0] * 3)])
def test_no_distortion_needs_no_rectification(model, d):
    message = info("plumb_bob", d=d, k=[0.0] * 9, width=0, height=0)  # an uncalibrated driver's camera_info
    message.distortion_model = model
    assert not LensModel.from_camera_info(message).needs_rectification
    assert RectifierCache().get(message) is None
    with pytest.raises(ConfigError, match=r"no distortion .* nothing to rectify"):
        Rectifier(LensModel.from_camera_info(message))


@pytest.mark.parametrize("change, message", [
    ({"distortion_model": "kannala_brandt"}, r"distortion_model 'kannala_brandt' with non-zero coefficients .*"
                                             r"expected one of plumb_bob, rational_polynomial, equidistant"),
    ({"distortion_model": ""}, r"distortion_model '' with non-zero"),
    ({"d": [-0.3, 0.1, 0, 0, 0, 0.2, 0, 0]}, r"plumb_bob takes 4 or 5 distortion coefficients in d, got 8.*"
                                             r"use rational_polynomial"),
    ({"d": [-0.3, 0.1]}, r"plumb_bob takes 4 or 5 distortion coefficients in d, got 2"),
    ({"distortion_model": "equidistant", "d": [-0.02, 0.004, 0.001, 0, 0.0002]},
     r"equidistant takes 4 distortion coefficients in d, got 5"),
    ({"k": [400.0, 0, 160, 0, 400, 128, 0, 0]}, r"k must have 9 values \(row-major\), got 8"),
    ({"k": [0.0] * 9}, r"k must be a camera matrix"),
    ({"r": [1.0, 0, 0, 0, 2.0, 0, 0, 0, 1.0]}, r"r must be a rotation matrix"),
    ({"p": [400.0, 0, 160, 0, 0, 400, 128, 0, 0, 0, 0, 0]}, r"p must be a projection matrix"),
    ({"p": [1.0] * 11}, r"p must have 12 values"),
    ({"width": 0}, r"width and height must be the calibrated image size, got 0x256"),
    ({"d": [-0.3, float("nan"), 0, 0, 0]}, r"d must be finite numbers"),
])
def test_a_camera_info_that_cannot_be_used_is_refused_with_what_and_where(change, message):
    bad = info()
    for name, value in change.items():
        setattr(bad, name, np.array(value, np.float64) if isinstance(value, list) else value)
    with pytest.raises(ConfigError, match=r"^thermal/camera_info: " + message):
        LensModel.from_camera_info(bad, "thermal/camera_info")


def test_distortion_vectors_of_other_lengths_are_taken_as_opencv_takes_them():
    assert len(lens(d=[-0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).coefficients) == 5  # a driver's zero padding
    assert len(lens(d=[-0.3, 0.1, 0.0, 0.0]).coefficients) == 4
    assert lens("rational_polynomial", d=[-0.3, 0.1, 0, 0, 0, 0.05]).coefficients.tolist() == \
        [-0.3, 0.1, 0, 0, 0, 0.05, 0, 0]  # 6 -> 8: the absent terms are zero


def test_an_image_of_another_size_is_refused_with_both_sizes():
    rectifier = Rectifier(lens())
    with pytest.raises(FusionInputError, match=r"test/camera_info: image is 640x512 but the camera_info describes "
                                               r"320x256"):
        rectifier(np.zeros((512, 640), np.uint8))


def test_binning_rectifies_the_binned_images_with_scaled_intrinsics():
    full = info(width=2 * W, height=2 * H, k=camera_matrix(2 * W, 2 * H, 75))
    full.binning_x = full.binning_y = 2
    binned = LensModel.from_camera_info(full, "thermal/camera_info")
    k, k_full = binned.camera_matrix, np.asarray(full.k).reshape(3, 3)
    assert binned.image_size == (W, H)
    assert k[0, 0] == pytest.approx(k_full[0, 0] / 2) and k[0, 2] == pytest.approx((k_full[0, 2] + 0.5) / 2 - 0.5)
    rectifier = Rectifier(binned)
    assert rectifier(np.zeros((H, W), np.uint8)).shape == (H, W)
    with pytest.raises(FusionInputError, match=r"binning 2x2 of 640x512"):
        rectifier(np.zeros((2 * H, 2 * W), np.uint8))


# ----- pixel types, the rectified model ---------------------------------------------------------------------------


def test_every_pixel_type_keeps_its_type_and_channels():
    rectifier = Rectifier(lens())
    mono8 = distort_image(pattern(), rectifier.lens)
    reference = rectifier(mono8).astype(float)
    assert rectifier(mono8).dtype == np.uint8
    mono16 = rectifier(mono8.astype(np.uint16) * 257)
    assert mono16.dtype == np.uint16 and np.abs(mono16 / 257 - reference).max() <= 1.0
    gray = rectifier(mono8.astype(np.float32) / 255)
    assert gray.dtype == np.float32 and np.abs(gray * 255 - reference).max() <= 1.0
    bgr = rectifier(np.dstack([mono8, 255 - mono8, mono8 // 2]))
    assert bgr.shape == (H, W, 3) and bgr.dtype == np.uint8 and np.array_equal(bgr[..., 0], rectifier(mono8))
    assert rectifier(mono8[..., None]).shape == (H, W, 1)


def test_the_rectified_model_describes_the_rectified_images():
    zoomed = np.asarray(camera_matrix(W, H, 75)).reshape(3, 3) * [[0.9], [0.9], [1]]
    stereo_p = np.column_stack([zoomed, [-30.0, 0, 0]]).ravel().tolist()
    for p in (None, stereo_p):
        rectifier = Rectifier(lens(p=p, r=cv2.Rodrigues(np.array([0.01, 0.0, 0.0]))[0].ravel().tolist()))
        model = rectifier.rectified_model()
        assert (model.width, model.height, model.distortion_model, model.d) == (W, H, "plumb_bob", (0.0,) * 5)
        assert np.allclose(np.reshape(model.k, (3, 3)), rectifier.new_camera_matrix)
        assert model.r == tuple(np.eye(3).ravel()) and not model.needs_rectification
        assert np.allclose(np.reshape(model.p, (3, 4))[:, :3], rectifier.new_camera_matrix)
        assert np.reshape(model.p, (3, 4))[0, 3] == (0.0 if p is None else -30.0)
        assert set(model.fields()) == {"height", "width", "distortion_model", "d", "k", "r", "p", "binning_x",
                                       "binning_y"}
    assert np.allclose(rectifier.new_camera_matrix, zoomed)  # P's left 3x3, as given


def test_the_rectified_model_goes_into_fused_camera_info_as_a_camera_info_does():
    rectifier = Rectifier(lens())
    plan = AlignmentPlan((W, H), (10, 8, W - 10, H - 8), (W - 20, H - 16), np.eye(3))
    fields = fused_camera_info_fields(rectifier.rectified_model(), plan, H - 16, W - 20)
    new = rectifier.new_camera_matrix
    assert fields["distortion_model"] == "plumb_bob" and fields["d"] == [0.0] * 5
    assert fields["k"][2] == pytest.approx(new[0, 2] - 10) and fields["k"][0] == pytest.approx(new[0, 0])
    assert (fields["width"], fields["height"], fields["binning_x"]) == (W - 20, H - 16, 0)


# ----- camera_info YAML files ---------------------------------------------------------------------------------------

CALIBRATION_FILE = """\
image_width: 640
image_height: 512
camera_name: thermal_camera
camera_matrix:
  rows: 3
  cols: 3
  data: [452.1, 0, 318.4, 0, 451.7, 259.2, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.341, 0.117, 0.0009, -0.0004, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [401.2, 0, 320.1, 0, 0, 405.3, 258.8, 0, 0, 0, 1, 0]
"""


def test_a_camera_calibration_file_is_read(tmp_path):
    path = tmp_path / "thermal.yaml"
    path.write_text(CALIBRATION_FILE)
    model = read_camera_info(path)
    assert (model.width, model.height, model.distortion_model) == (640, 512, "plumb_bob")
    assert model.k == (452.1, 0, 318.4, 0, 451.7, 259.2, 0, 0, 1) and model.d[:2] == (-0.341, 0.117)
    assert model.p[:3] == (401.2, 0, 320.1) and model.needs_rectification and model.source == str(path)
    assert np.allclose(Rectifier(model).new_camera_matrix, [[401.2, 0, 320.1], [0, 405.3, 258.8], [0, 0, 1]])
    again = tmp_path / "again.yaml"
    again.write_text(camera_info_yaml(model, "thermal_camera"))
    assert read_camera_info(again) == model


@pytest.mark.parametrize("edit, message", [
    (lambda doc: doc.pop("camera_matrix"), r"missing camera_matrix"),
    (lambda doc: doc["camera_matrix"].update(rows=2), r"camera_matrix must be 3x3 \(rows, cols\), got 2x3"),
    (lambda doc: doc["distortion_coefficients"].update(cols=4), r"distortion_coefficients says 1x4 but its data has 5"),
    (lambda doc: doc["projection_matrix"].update(data="none"), r"projection_matrix must be a mapping"),
    (lambda doc: doc.update(distortion_model="fisheye62"), r"distortion_model 'fisheye62' with non-zero"),
    (lambda doc: doc.update(image_width="wide"), r"width must be a whole number >= 0, got 'wide'"),
])
def test_a_bad_camera_info_file_is_refused_naming_the_file_and_the_key(tmp_path, edit, message):
    doc = yaml.safe_load(CALIBRATION_FILE)
    edit(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=rf"^{path}: {message}"):
        read_camera_info(path)


def test_a_missing_or_foreign_camera_info_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read the camera_info file"):
        read_camera_info(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list.yaml: expected a camera_info YAML mapping"):
        read_camera_info(tmp_path / "list.yaml")


# ----- sage-calibrate on rectified images ---------------------------------------------------------------------------


RIG_WIDTH, RIG_HEIGHT = 400, 300


@pytest.fixture(scope="module")
def distorted_rig(tmp_path_factory):
    """A generated pair seen by a wide-angle distorted thermal camera and an undistorted rgb camera, written as
    ir.png, vis.png and their camera_info files ir.yaml, vis.yaml (vis.yaml: no distortion)."""
    folder = tmp_path_factory.mktemp("rig")
    width, height, margin = RIG_WIDTH, RIG_HEIGHT, (40, 30)
    frame = SyntheticScene(width + 2 * margin[0], height + 2 * margin[1], seed=4).frame(1.0)
    rig = random_rig((width, height), np.random.default_rng(4), fov=(0.6, 0.7), resolution=(0.9, 1.0))
    to_canvas = np.array([[1, 0, margin[0]], [0, 1, margin[1]], [0, 0, 1]], np.float64)
    thermal_lens = LensModel(*rig.thermal_size, "plumb_bob", (-0.35, 0.12, 0.0, 0.0, 0.0),
                             camera_matrix(*rig.thermal_size, 75), np.eye(3).ravel(), [0.0] * 12)
    rgb_lens = LensModel(width, height, "plumb_bob", (0.0,) * 5, camera_matrix(width, height, 60), np.eye(3).ravel(),
                         [0.0] * 12)
    thermal = distort_image(frame.thermal_mono8, thermal_lens, to_canvas @ rig.homography)
    rgb = distort_image(frame.visible, rgb_lens, to_canvas)
    for name, image, model in (("ir", thermal, thermal_lens), ("vis", rgb, rgb_lens)):
        cv2.imwrite(str(folder / f"{name}.png"), image)
        (folder / f"{name}.yaml").write_text(camera_info_yaml(model, name))
    return folder, rig, thermal_lens


def test_calibrate_registers_rectified_images_and_says_so(distorted_rig, tmp_path, capsys):
    folder, rig, thermal_lens = distorted_rig
    out = tmp_path / "rig.yaml"
    assert calibrate_main(["--ir", str(folder / "ir.png"), "--vis", str(folder / "vis.png"), "--out", str(out),
                           "--thermal-info", str(folder / "ir.yaml"), "--rgb-info", str(folder / "vis.yaml")]) == 0
    text = out.read_text()
    estimate = np.asarray(yaml.safe_load(text)["/**"]["ros__parameters"]["homography"]).reshape(3, 3)
    # Rectified thermal pixels -> the pinhole thermal camera (K K'^-1) -> rgb pixels (the rgb camera is undistorted).
    k = thermal_lens.camera_matrix
    truth = rig.homography @ k @ np.linalg.inv(Rectifier(thermal_lens).new_camera_matrix)
    assert grid_error(estimate, truth, rig.thermal_size, RIG_WIDTH) < 1.5
    assert "# the homography maps rectified thermal pixels to rectified rgb pixels" in text
    assert f"# thermal: rectified with {folder / 'ir.yaml'} (plumb_bob)" in text
    assert f"# rgb: {folder / 'vis.yaml'} has no distortion; images used as they are" in text
    assert "thermal: rectified with" in capsys.readouterr().out


def test_calibrate_refuses_a_camera_info_of_another_size_in_one_line(distorted_rig, tmp_path, capsys):
    folder = distorted_rig[0]
    wrong = tmp_path / "wrong.yaml"  # a distorted rgb lens calibrated at 640x480
    wrong.write_text(camera_info_yaml(LensModel(640, 480, "plumb_bob", (-0.1, 0.02, 0.0, 0.0, 0.0),
                                                camera_matrix(640, 480, 60), np.eye(3).ravel(), [0.0] * 12)))
    out = tmp_path / "rig.yaml"
    assert calibrate_main(["--ir", str(folder / "ir.png"), "--vis", str(folder / "vis.png"), "--out", str(out),
                           "--rgb-info", str(wrong)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sage-calibrate: error: {folder / 'vis.png'}: "), err
    assert f"image is {RIG_WIDTH}x{RIG_HEIGHT} but the camera_info describes 640x480" in err[0] and not out.exists()
