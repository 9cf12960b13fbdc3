"""A camera's lens as ROS's ``sensor_msgs/CameraInfo`` describes it: intrinsics, distortion, R and P.

``LensModel`` reads any object with CameraInfo's fields (rclpy's message, rosbags' dataclass, a
``SimpleNamespace``), checks them once, and gives OpenCV-ready matrices in the pixels of the images
actually published (binning applied). ``undistort_points`` / ``distort_points`` / ``distort_image``
move between the raw (distorted) image and the ideal pinhole image of camera matrix K: the rectifier
does not need them, simulations and benchmarks with a known answer do.

Conventions are ROS's (REP 104, image_geometry): pixel centres at integer coordinates, d ordered as
OpenCV orders it, R the rectification rotation and P the projection of the rectified image. Like
image_geometry, a model whose coefficients are all zero is taken as distortion-free (even
``equidistant``, whose zero-coefficient model is strictly an ideal fisheye: no calibration gives that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from sage_core.errors import ConfigError

PLUMB_BOB, RATIONAL_POLYNOMIAL, EQUIDISTANT = "plumb_bob", "rational_polynomial", "equidistant"
#: The distortion models of sensor_msgs/distortion_models.hpp, and the lengths of d each accepts. plumb_bob:
#: k1 k2 p1 p2 k3 (OpenCV takes 4: k3 = 0); rational_polynomial: k1 k2 p1 p2 k3 k4 k5 k6, and OpenCV's
#: 5, 12 and 14 (thin prism, tilt); equidistant: k1..k4 of the Kannala-Brandt fisheye model.
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    PLUMB_BOB: (4, 5), RATIONAL_POLYNOMIAL: (5, 8, 12, 14), EQUIDISTANT: (4,)}
#: Iterative point undistortion: OpenCV's default 5 steps leave 0.16 px at k1 = -0.35; 30 leave under 1e-9 px there
#: (and for the rational and fisheye lenses of the tests). A count only: OpenCV's EPS test reprojects every step,
#: which doubles the cost.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT, 30, 0.0)


def _floats(values, name: str, count: int | None, where: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in np.asarray(values, np.float64).ravel())
    except (TypeError, ValueError):
        raise ConfigError(f"{where}{name} must be numbers, got {values!r}") from None
    if count is not None and len(out) != count:
        raise ConfigError(f"{where}{name} must have {count} values (row-major), got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ConfigError(f"{where}{name} must be finite numbers, got {list(out)}")
    return out


def _binning_matrix(bx: int, by: int) -> np.ndarray:
    """Full-resolution pixels -> binned pixels, pixel-centre exact: u' = (u + 0.5) / b - 0.5."""
    return np.array([[1 / bx, 0, 0.5 / bx - 0.5], [0, 1 / by, 0.5 / by - 0.5], [0, 0, 1]], np.float64)


@dataclass(frozen=True)
class LensModel:
    """One camera's CameraInfo lens fields, checked. k, r: 3x3 row-major; p: 3x4 row-major. Equality
    compares the fields (not ``source``), so a LensModel is also the cache key of its rectifier."""

    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    binning_x: int = 0
    binning_y: int = 0
    #: Where the model came from (a topic, a file), for error messages.
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        for name, count in (("d", None), ("k", 9), ("r", 9), ("p", 12)):
            object.__setattr__(self, name, _floats(getattr(self, name), name, count, where))
        object.__setattr__(self, "distortion_model", str(self.distortion_model))
        for name in ("width", "height", "binning_x", "binning_y"):
            value = getattr(self, name)
            try:
                whole = int(value) == value and value >= 0 and not isinstance(value, bool)
            except (TypeError, ValueError):
                whole = False
            if not whole:
                raise ConfigError(f"{where}{name} must be a whole number >= 0, got {value!r}")
            object.__setattr__(self, name, int(value))
        if any(self.d):
            self._check_distortion(where)
            self._check_geometry(where)

    @classmethod
    def from_camera_info(cls, info, source: str = "") -> LensModel:
        """From anything with CameraInfo's fields ``height width distortion_model d k r p binning_x binning_y``."""
        return cls(width=info.width, height=info.height, distortion_model=info.distortion_model, d=info.d,
                   k=info.k, r=info.r, p=info.p, binning_x=getattr(info, "binning_x", 0),
                   binning_y=getattr(info, "binning_y", 0), source=source)

    def _check_distortion(self, where: str) -> None:
        model = self.distortion_model
        if model not in DISTORTION_MODELS:
            raise ConfigError(
                f"{where}distortion_model {model!r} with non-zero coefficients d={list(self.d)}: expected one of "
                f"{', '.join(DISTORTION_MODELS)} (or all-zero d for an undistorted camera)")
        lengths = DISTORTION_MODELS[model]
        if len(self.coefficients) not in lengths:
            raise ConfigError(
                f"{where}{model} takes {' or '.join(map(str, lengths))} distortion coefficients in d, "
                f"got {len(self.d)}: {list(self.d)}"
                + (" (more coefficients: use rational_polynomial)" if model == PLUMB_BOB and len(self.d) > 5 else ""))

    def _check_geometry(self, where: str) -> None:
        """What rectification needs: a size, a camera matrix, a rotation for R, and P unset or a projection."""
        if self.width == 0 or self.height == 0:
            raise ConfigError(f"{where}width and height must be the calibrated image size, got "
                              f"{self.width}x{self.height}")
        k = np.asarray(self.k).reshape(3, 3)
        if not (k[0, 0] > 0 and k[1, 1] > 0 and np.allclose(k[2], [0, 0, 1])):
            raise ConfigError(f"{where}k must be a camera matrix [fx 0 cx; 0 fy cy; 0 0 1] with fx, fy > 0, "
                              f"got {list(self.k)}")
        r = np.asarray(self.r).reshape(3, 3)
        if any(self.r) and not (np.allclose(r @ r.T, np.eye(3), atol=1e-3) and np.linalg.det(r) > 0):
            raise ConfigError(f"{where}r must be a rotation matrix (or all zero: identity), got {list(self.r)}")
        p = np.asarray(self.p).reshape(3, 4)
        if any(self.p) and not (p[0, 0] > 0 and p[1, 1] > 0 and np.allclose(p[2, :3], [0, 0, 1])):
            raise ConfigError(f"{where}p must be a projection matrix [fx' 0 cx' Tx; 0 fy' cy' Ty; 0 0 1 0] "
                              f"(or all zero: unset), got {list(self.p)}")

    @property
    def needs_rectification(self) -> bool:
        """True when the images are distorted: a known model with a non-zero coefficient."""
        return any(self.d)  # an unknown model with non-zero d never gets here: __post_init__ refused it

    @property
    def is_fisheye(self) -> bool:
        return self.distortion_model == EQUIDISTANT

    @property
    def binning(self) -> tuple[int, int]:
        """(x, y) binning; CameraInfo's 0 means 1."""
        return max(1, self.binning_x), max(1, self.binning_y)

    @property
    def image_size(self) -> tuple[int, int]:
        """(w, h) of the images this camera publishes: the calibrated size divided by the binning."""
        bx, by = self.binning
        return self.width // bx, self.height // by

    @property
    def coefficients(self) -> np.ndarray:
        """d for OpenCV: trailing zeros past the model's longest form cut (drivers pad d); a rational_polynomial d
        between OpenCV's lengths (6, 7, 9..11, 13) padded with zeros to the next one (an absent term is zero)."""
        d = list(self.d)
        lengths = DISTORTION_MODELS.get(self.distortion_model, (5,))
        while len(d) > max(lengths) and d[-1] == 0.0:
            d.pop()
        if self.distortion_model == RATIONAL_POLYNOMIAL and min(lengths) < len(d) < max(lengths):
            d += [0.0] * (min(n for n in lengths if n >= len(d)) - len(d))
        return np.asarray(d, np.float64)

    @property
    def camera_matrix(self) -> np.ndarray:
        """K (3x3) in the published images' pixels."""
        return _binning_matrix(*self.binning) @ np.asarray(self.k).reshape(3, 3)

    @property
    def rotation(self) -> np.ndarray:
        """R (3x3); an all-zero R (drivers that leave it unset) is the identity."""
        return np.asarray(self.r).reshape(3, 3) if any(self.r) else np.eye(3)

    @property
    def projection(self) -> np.ndarray | None:
        """P (3x4) in the published images' pixels, or None when unset (all zero)."""
        return _binning_matrix(*self.binning) @ np.asarray(self.p).reshape(3, 4) if any(self.p) else None

    def fields(self) -> dict:
        """CameraInfo's lens fields as plain values, to build a message: ``CameraInfo(header=..., **fields)``."""
        return {"height": self.height, "width": self.width, "distortion_model": self.distortion_model,
                "d": list(self.d), "k": list(self.k), "r": list(self.r), "p": list(self.p),
                "binning_x": self.binning_x, "binning_y": self.binning_y}


def _as_points(points) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(points, np.float64).reshape(-1, 1, 2))


def undistort_points(lens: LensModel, points) -> np.ndarray:
    """Raw image pixels (N x 2) -> pixels of the ideal pinhole image with the same camera matrix K (no R)."""
    k, d, raw = lens.camera_matrix, lens.coefficients, _as_points(points)
    # The iteration count is a keyword in OpenCV >= 4.6 and 5, a separate function (pinhole) or fixed
    # (fisheye) in 4.5, which Ubuntu 22.04's python3-opencv is.
    if lens.is_fisheye:
        try:
            out = cv2.fisheye.undistortPoints(raw, k, d, None, k, criteria=_UNDISTORT_CRITERIA)
        except (cv2.error, TypeError):
            out = cv2.fisheye.undistortPoints(raw, k, d, None, k)
    elif hasattr(cv2, "undistortPointsIter"):
        out = cv2.undistortPointsIter(raw, k, d, None, k, _UNDISTORT_CRITERIA)
    else:
        out = cv2.undistortPoints(raw, k, d, None, None, k, criteria=_UNDISTORT_CRITERIA)
    return out.reshape(-1, 2)


def distort_points(lens: LensModel, points) -> np.ndarray:
    """Pixels of the ideal pinhole image with camera matrix K (N x 2) -> where the lens puts them in the raw image."""
    k, d = lens.camera_matrix, lens.coefficients
    pixels = np.asarray(points, np.float64).reshape(-1, 2)
    rays = np.column_stack([pixels, np.ones(len(pixels))]) @ np.linalg.inv(k).T
    if lens.is_fisheye:
        out = cv2.fisheye.distortPoints(_as_points(rays[:, :2] / rays[:, 2:]), k, d)
    else:
        out, _ = cv2.projectPoints(np.ascontiguousarray(rays.reshape(-1, 1, 3)), np.zeros(3), np.zeros(3), k, d)
    return out.reshape(-1, 2)


def distort_image(image: np.ndarray, lens: LensModel, to_source: np.ndarray | None = None) -> np.ndarray:
    """The raw image ``lens`` takes of a scene, given as a pinhole ``image`` (for simulations with a known answer).

    ``to_source``: 3x3 homography from the lens's pinhole pixels (camera matrix K) to ``image``'s pixels;
    identity (``image`` is the pinhole view itself) when None. Outside ``image`` the result is 0.
    """
    w, h = lens.image_size
    ys, xs = np.mgrid[0:h, 0:w]
    pinhole = undistort_points(lens, np.column_stack([xs.ravel(), ys.ravel()]))
    if to_source is not None:
        pinhole = cv2.perspectiveTransform(pinhole.reshape(1, -1, 2), np.asarray(to_source, np.float64))[0]
    maps = pinhole.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)
