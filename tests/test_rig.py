"""The rig's geometry (sage_core.rig, sage_core.rig_file): extrinsics from a quaternion or a stereo calibration,
their checks, and the homography of a plane at a distance."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sage_core.camera_info_file import camera_info_yaml
from sage_core.errors import ConfigError, FusionInputError
from sage_core.lens import LensModel
from sage_core.parallax_scene import make_rig, pinhole
from sage_core.rig import CameraView, Rig, RigExtrinsics, rotation_from_quaternion
from sage_core.rig_file import read_rig_file, rig_yaml


def project(k: np.ndarray, points: np.ndarray) -> np.ndarray:
    q = points @ k.T
    return q[:, :2] / q[:, 2:]


def transform(h: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pixels.reshape(1, -1, 2).astype(np.float64), h)[0]


def plane_points(rig: Rig, distance: float) -> np.ndarray:
    """3-D points (RGB frame) on the plane Z_rgb = distance, spread over the RGB view."""
    w, h = rig.rgb.size
    pixels = np.stack(np.meshgrid(np.linspace(0, w - 1, 7), np.linspace(0, h - 1, 5)), -1).reshape(-1, 2)
    rays = np.column_stack([pixels, np.ones(len(pixels))]) @ np.linalg.inv(rig.rgb.k).T
    return rays * distance


@pytest.mark.parametrize("distance", [0.7, 2.0, 10.0, math.inf])
def test_the_plane_homography_maps_thermal_pixels_of_the_plane_onto_their_rgb_pixels(distance):
    rig = make_rig(baseline=0.08, yaw_deg=2.0, roll_deg=-1.0)
    points = plane_points(rig, 1e6 if math.isinf(distance) else distance)
    r, t = rig.extrinsics.rotation, rig.extrinsics.translation
    thermal_px = project(rig.thermal.k, (points - t) @ r)  # X_thermal = R^T (X_rgb - t)
    rgb_px = project(rig.rgb.k, points)
    assert np.abs(transform(rig.homography(distance), thermal_px) - rgb_px).max() < 1e-3


def test_parallax_follows_the_formula_of_the_issue():
    """f b |1/Z - 1/Z0|: a 640-wide camera of 70 degrees (f 457 px), 5 cm, far calibration: 23 px at 1 m."""
    rig = make_rig(baseline=0.05, yaw_deg=0.0, roll_deg=0.0)
    assert rig.parallax_px(1.0, math.inf) == pytest.approx(22.85, abs=0.05)
    assert rig.parallax_px(5.0, math.inf) == pytest.approx(4.57, abs=0.01)
    centre = np.array([[319.5, 239.5]])
    moved = transform(rig.homography(1.0), centre) - transform(rig.homography(math.inf), centre)
    assert np.linalg.norm(moved) == pytest.approx(rig.parallax_px(1.0, math.inf), rel=0.01)


def test_a_pure_rotation_has_one_homography_at_every_distance():
    rig = make_rig(baseline=0.0, yaw_deg=3.0, roll_deg=1.0)
    far = rig.homography(math.inf)
    for distance in (0.5, 3.0, 40.0):
        assert np.allclose(rig.homography(distance), far, atol=1e-12)
    assert rig.parallax_px(0.5, math.inf) == 0.0


def test_quaternions_round_trip_through_a_rig_file(tmp_path):
    rotation = rotation_from_quaternion([0.02, -0.7, 0.03, 0.713])  # about 90 degrees, not axis-aligned
    extrinsics = RigExtrinsics(rotation, [0.04, -0.01, 0.005])
    path = tmp_path / "rig.yaml"
    path.write_text(rig_yaml(extrinsics))
    read = read_rig_file(path)
    assert np.allclose(read.extrinsics.rotation, rotation, atol=1e-8)
    assert np.allclose(read.extrinsics.translation, [0.04, -0.01, 0.005])
    assert read.thermal_lens is None and read.rgb_lens is None


def lens_file(path, k: np.ndarray, size: tuple[int, int], r: np.ndarray, p: np.ndarray) -> str:
    lens = LensModel(width=size[0], height=size[1], distortion_model="plumb_bob", d=[0.0] * 5, k=k.ravel(),
                     r=r.ravel(), p=p.ravel())
    path.write_text(camera_info_yaml(lens))
    return path.name


@pytest.mark.parametrize("thermal_is_left", [True, False])
def test_extrinsics_come_from_camera_calibrations_stereo_output(tmp_path, thermal_is_left):
    """camera_calibration's stereo calibrator writes each camera's R and P (cv2.stereoRectify's R1, R2, P1, P2)."""
    size = (640, 480)
    k_thermal, k_rgb = pinhole(size, 50), pinhole(size, 70)
    truth = RigExtrinsics(rotation_from_quaternion([0.01, 0.02, -0.005, 0.9997]), [0.06, 0.004, -0.01])
    if thermal_is_left:  # stereoRectify's R, T take camera 1's points to camera 2's: thermal -> rgb
        k1, k2, r, t = k_thermal, k_rgb, truth.rotation, truth.translation
    else:
        k1, k2, r, t = k_rgb, k_thermal, truth.rotation.T, -truth.rotation.T @ truth.translation
    r1, r2, p1, p2, *_ = cv2.stereoRectify(k1, np.zeros(5), k2, np.zeros(5), size, r, t.reshape(3, 1), alpha=0)
    (rt, pt), (rr, pr) = ((r1, p1), (r2, p2)) if thermal_is_left else ((r2, p2), (r1, p1))
    names = lens_file(tmp_path / "thermal.yaml", k_thermal, size, rt, pt), lens_file(tmp_path / "rgb.yaml", k_rgb,
                                                                                     size, rr, pr)
    (tmp_path / "rig.yaml").write_text(f"thermal_camera_info: {names[0]}\nrgb_camera_info: {names[1]}\n")
    rig = read_rig_file(tmp_path / "rig.yaml")
    assert np.allclose(rig.extrinsics.rotation, truth.rotation, atol=1e-9)
    assert np.allclose(rig.extrinsics.translation, truth.translation, atol=1e-9)
    assert np.allclose(rig.thermal_lens.camera_matrix, k_thermal)


@pytest.mark.parametrize("text, expected", [
    ("translation: [0.05, 0, 0]\nrotation: [0.2, 0, 0, 1]\n", "has length 1.0198"),
    ("translation: [1.2, 0, 0]\nrotation: [0, 0, 0, 1]\n", "baseline 1.200 m"),
    ("translation: [0.05, 0]\nrotation: [0, 0, 0, 1]\n", "translation must be a list of 3 numbers"),
    ("translation: [0.05, 0, 0]\n", "translation without rotation"),
    ("translaton: [0.05, 0, 0]\nrotation: [0, 0, 0, 1]\n", "unknown key(s) translaton"),
    ("rotation: [0, 0, 0, 1]\ntranslation: [0.05, 0, 0]\nthermal_camera_info: missing.yaml\n", "missing.yaml"),
    ("thermal_camera_info: t.yaml\n", "no extrinsics"),
    ("[1, 2]\n", "expected a mapping"),
])
def test_a_bad_rig_file_is_one_clear_error(tmp_path, text, expected):
    (tmp_path / "t.yaml").write_text("image_width: 640\nimage_height: 480\n"
                                     "camera_matrix: {rows: 3, cols: 3, data: [500, 0, 320, 0, 500, 240, 0, 0, 1]}\n")
    path = tmp_path / "rig.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        read_rig_file(path)
    assert expected in str(error.value) and str(path) in str(error.value)


def test_a_stereo_pair_without_a_baseline_is_refused(tmp_path):
    k = pinhole((640, 480), 60)
    p = np.column_stack([k, np.zeros(3)])
    names = [lens_file(tmp_path / f"{name}.yaml", k, (640, 480), np.eye(3), p) for name in ("thermal", "rgb")]
    (tmp_path / "rig.yaml").write_text(f"thermal_camera_info: {names[0]}\nrgb_camera_info: {names[1]}\n")
    with pytest.raises(ConfigError, match="no baseline"):
        read_rig_file(tmp_path / "rig.yaml")


def test_rotations_and_intrinsics_are_checked():
    with pytest.raises(ConfigError, match="not a rotation matrix"):
        RigExtrinsics(np.diag([1.0, 1.0, 1.1]), [0.05, 0, 0])
    with pytest.raises(ConfigError, match="not a rotation matrix"):
        RigExtrinsics(np.diag([1.0, 1.0, -1.0]), [0.05, 0, 0])  # a mirror
    uncalibrated = LensModel(width=640, height=480, distortion_model="", d=[], k=[0.0] * 9, r=[0.0] * 9,
                             p=[0.0] * 12, source="/flir/camera_info")
    with pytest.raises(ConfigError, match="/flir/camera_info: no camera matrix"):
        CameraView.of(uncalibrated)
    view = CameraView(pinhole((640, 480), 60), np.eye(3), (640, 480), "rgb/camera_info")
    with pytest.raises(FusionInputError, match="rgb image is 320x240 but its camera_info"):
        view.check_size((320, 240), "rgb")
    with pytest.raises(ConfigError, match="expected a distance > 0"):
        make_rig().homography(0.0)
