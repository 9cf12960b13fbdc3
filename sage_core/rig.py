"""A thermal camera beside an RGB camera: the rig's geometry, and the homography of a plane at a distance.

A homography registers the two cameras exactly only for one plane, or for cameras sharing one optical
centre. With a baseline ``b`` between them, content at depth ``Z`` lands ``f * b * |1/Z - 1/Z0|`` pixels
from where a homography for depth ``Z0`` puts it. The rig's geometry removes that: the thermal camera's
pose in the RGB camera's optical frame (:class:`RigExtrinsics`, ROS optical frames: x right, y down,
z forward) and both cameras' intrinsics give the homography of the plane at any distance
(:meth:`Rig.homography`), and, with a depth image, the thermal pixel of every RGB pixel
(``depth_registration.py``).

Conventions. ``rotation`` and ``translation`` map thermal-frame points to the RGB frame,
``X_rgb = R X_thermal + t``: the thermal frame's pose in the RGB frame, what
``ros2 run tf2_ros tf2_echo <rgb optical frame> <thermal optical frame>`` prints. A plane "at distance d" is
``Z_rgb = d``, square to the RGB camera's axis; ``inf`` is the far plane (the homography of a pure rotation).
The intrinsics are those of the images the aligner gets (:class:`CameraView`): a camera that was rectified
has the rectified camera matrix and its frame turned by the camera_info's R.

Where the extrinsics come from (:mod:`sage_core.rig_file`): a small YAML (translation in metres, quaternion),
node parameters, or the camera_info pair that ROS's ``camera_calibration`` stereo calibrator writes
(:func:`extrinsics_from_stereo`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sage_core.errors import ConfigError, FusionInputError

if TYPE_CHECKING:  # the parameter table checks extrinsics without loading OpenCV
    from sage_core.lens import LensModel

#: The longest baseline taken for a thermal + RGB rig; longer is almost surely millimetres given as metres.
MAX_BASELINE_M = 1.0
#: How far from orthonormal a rotation may be (R R^T - I, largest entry): a calibration file's rounding.
ROTATION_TOLERANCE = 1e-3


def rotation_from_quaternion(quaternion, where: str = "rotation") -> np.ndarray:
    """3x3 rotation of a unit quaternion ``[x, y, z, w]`` (ROS's order); ConfigError unless of length 1
    (within 1 %: a file's rounding is normalised away)."""
    q = np.asarray(quaternion, np.float64).ravel()
    if q.size != 4 or not np.all(np.isfinite(q)):
        raise ConfigError(f"{where}: expected a quaternion [x, y, z, w] of 4 finite numbers, got {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > 0.01:
        raise ConfigError(f"{where}: quaternion {q.tolist()} has length {norm:.4f}; expected a unit quaternion "
                          "[x, y, z, w] (the identity is [0, 0, 0, 1])")
    x, y, z, w = q / norm
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def quaternion_from_rotation(rotation: np.ndarray) -> list[float]:
    """The unit quaternion ``[x, y, z, w]`` of a rotation matrix (Shepperd's method: the largest of w, x, y, z
    first, stable everywhere)."""
    r = np.asarray(rotation, np.float64)
    trace = np.trace(r)
    i = int(np.argmax([trace, r[0, 0], r[1, 1], r[2, 2]]))
    if i == 0:
        s = 2 * np.sqrt(1 + trace)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4]
    else:
        a, b, c = i - 1, i % 3, (i + 1) % 3
        s = 2 * np.sqrt(1 + r[a, a] - r[b, b] - r[c, c])
        q = [0.0] * 4
        q[a], q[b], q[c], q[3] = s / 4, (r[b, a] + r[a, b]) / s, (r[c, a] + r[a, c]) / s, (r[c, b] - r[b, c]) / s
    return [float(v) for v in q]


@dataclass(frozen=True)
class RigExtrinsics:
    """The thermal camera's pose in the RGB camera's optical frame: ``X_rgb = rotation @ X_thermal + translation``
    (metres). Checked on creation: a rotation matrix, a finite translation, a baseline of at most 1 m."""

    rotation: np.ndarray
    translation: np.ndarray
    source: str = ""  # where it came from, for messages

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        r = np.asarray(self.rotation, np.float64)
        t = np.asarray(self.translation, np.float64).ravel()
        if r.shape != (3, 3) or not np.all(np.isfinite(r)):
            raise ConfigError(f"{where}rotation must be 3x3 finite numbers, got {r.tolist()}")
        if np.abs(r @ r.T - np.eye(3)).max() > ROTATION_TOLERANCE or np.linalg.det(r) <= 0:
            raise ConfigError(f"{where}rotation {np.round(r, 5).tolist()} is not a rotation matrix (orthonormal, "
                              "determinant +1)")
        if t.size != 3 or not np.all(np.isfinite(t)):
            raise ConfigError(f"{where}translation must be 3 finite numbers (metres), got {t.tolist()}")
        if np.linalg.norm(t) > MAX_BASELINE_M:
            raise ConfigError(f"{where}baseline {np.linalg.norm(t):.3f} m (translation {t.tolist()}) is over "
                              f"{MAX_BASELINE_M:g} m: expected two cameras side by side, translation in metres")
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)

    @classmethod
    def from_quaternion(cls, translation, quaternion, source: str = "") -> RigExtrinsics:
        where = f"{source}: rotation" if source else "rotation"
        return cls(rotation_from_quaternion(quaternion, where), np.asarray(translation, np.float64), source)

    @property
    def baseline(self) -> float:
        """Distance between the optical centres (m)."""
        return float(np.linalg.norm(self.translation))


def _stereo_origin(lens: LensModel, where: str) -> np.ndarray:
    """The camera's optical centre in the stereo pair's rectified frame, from P's Tx, Ty (camera_calibration)."""
    p = lens.projection
    if p is None:
        raise ConfigError(f"{where}: no projection matrix P: not a stereo calibration (camera_calibration's stereo "
                          "calibrator writes R and P for each camera)")
    return np.array([-p[0, 3] / p[0, 0], -p[1, 3] / p[1, 1], 0.0])


def extrinsics_from_stereo(thermal: LensModel, rgb: LensModel) -> RigExtrinsics:
    """The rig from the two camera_info files of a stereo calibration (ROS's ``camera_calibration``, run with
    a heated checkerboard): each camera's R turns it into the common rectified frame, where P's
    ``Tx = -fx' * B`` places it (either camera may have been the calibrator's left one)."""
    names = f"{thermal.source or 'thermal camera_info'} + {rgb.source or 'rgb camera_info'}"
    c_thermal = _stereo_origin(thermal, thermal.source or "thermal camera_info")
    c_rgb = _stereo_origin(rgb, rgb.source or "rgb camera_info")
    if not np.any(c_thermal - c_rgb) and np.allclose(thermal.rotation, rgb.rotation):
        raise ConfigError(f"{names}: no baseline in either projection matrix (P[0,3] = P[1,3] = 0) and the same R: "
                          "not the output of camera_calibration's stereo calibrator; give translation and rotation")
    r_rgb = rgb.rotation
    return RigExtrinsics(r_rgb.T @ thermal.rotation, r_rgb.T @ (c_thermal - c_rgb), f"stereo calibration {names}")


def _inverse(distance: float) -> float:
    return 0.0 if math.isinf(distance) else 1.0 / distance


@dataclass(frozen=True)
class CameraView:
    """One camera's images as the aligner gets them: camera matrix ``k`` in their pixels, ``rotation`` from the
    camera's optical frame to the image's frame (a stereo R when rectification applied one, else identity),
    and the image ``size`` (w, h)."""

    k: np.ndarray
    rotation: np.ndarray
    size: tuple[int, int]
    source: str = ""

    @classmethod
    def of(cls, lens: LensModel, rectified_k: np.ndarray | None = None,
           rectified_rotation: np.ndarray | None = None) -> CameraView:
        """The view of a camera_info: as published (``rectified_k`` None), or after rectification to
        ``rectified_k`` with ``rectified_rotation`` (what ``sage_core.rectification.Rectifier`` applies)."""
        if rectified_k is not None:
            rotation = np.eye(3) if rectified_rotation is None else rectified_rotation
            return cls(np.asarray(rectified_k, np.float64), np.asarray(rotation, np.float64), lens.image_size,
                       f"{lens.source} (rectified)" if lens.source else "rectified")
        k = lens.camera_matrix
        if not (k[0, 0] > 0 and k[1, 1] > 0 and np.allclose(k[2], [0, 0, 1])):
            raise ConfigError(f"{lens.source or 'camera_info'}: no camera matrix (k = {list(lens.k)}): the rig needs "
                              "each camera's intrinsics; calibrate the camera (camera_calibration)")
        return cls(k, np.eye(3), lens.image_size, lens.source)

    def check_size(self, size: tuple[int, int], camera: str) -> None:
        """FusionInputError unless images of ``size`` are the ones these intrinsics describe."""
        if tuple(size) != tuple(self.size):
            raise FusionInputError(
                f"{camera} image is {size[0]}x{size[1]} but its camera_info ({self.source or 'intrinsics'}) describes "
                f"{self.size[0]}x{self.size[1]}: the rig's intrinsics do not apply (publish a camera_info for this "
                "resolution)")


@dataclass(frozen=True)
class Rig:
    """Extrinsics and both cameras' views: everything to map thermal pixels onto RGB pixels at any depth."""

    extrinsics: RigExtrinsics
    thermal: CameraView
    rgb: CameraView

    @property
    def image_rotation(self) -> np.ndarray:
        """Thermal image frame -> RGB image frame (the extrinsics turned by each camera's rectification)."""
        return self.rgb.rotation @ self.extrinsics.rotation @ self.thermal.rotation.T

    @property
    def image_translation(self) -> np.ndarray:
        return self.rgb.rotation @ self.extrinsics.translation

    def rgb_to_thermal(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, b)`` such that the RGB pixel ``p = [u, v, 1]`` at depth ``Z`` (RGB frame) is seen by the thermal
        camera at ``A p + b / Z`` (homogeneous): ``A = K_t R^T K_rgb^-1`` (the far plane), ``b = -K_t R^T t``."""
        r, t = self.image_rotation, self.image_translation
        k_thermal = self.thermal.k
        return k_thermal @ r.T @ np.linalg.inv(self.rgb.k), -k_thermal @ r.T @ t

    def homography(self, distance: float) -> np.ndarray:
        """Thermal pixels -> RGB pixels for the plane ``Z_rgb = distance`` (m; ``inf``: the far plane), h[2,2] = 1."""
        if not (distance > 0):
            raise ConfigError(f"registration distance {distance} m: expected a distance > 0 (inf: the far plane)")
        a, b = self.rgb_to_thermal()
        rgb_to_thermal = a if math.isinf(distance) else a + np.outer(b, [0.0, 0.0, 1.0]) / distance
        h = np.linalg.inv(rgb_to_thermal)
        return h / h[2, 2]

    def parallax_px(self, depth: float, distance: float) -> float:
        """How far (RGB pixels) content at ``depth`` lands from where the plane at ``distance`` puts it, at the
        image centre: ``f * b_perp * |1/depth - 1/distance|``, b_perp the baseline square to the RGB axis."""
        f = float(self.rgb.k[0, 0])
        b = float(np.linalg.norm(self.image_translation[:2]))
        return f * b * abs(_inverse(depth) - _inverse(distance))
