"""Lens rectification from a camera_info: undistorted images before the thermal -> rgb alignment.

A homography (what ``sage-calibrate`` estimates and the aligner applies) maps one pinhole camera's
pixels onto another's; lens distortion bends straight lines, so no homography aligns distorted
images across the whole field. Each distorted camera is therefore rectified first, with maps
computed once per camera_info (``RectifierCache``), the same way in the node, the bag tool and
``sage-calibrate``, so that the homography calibrated on rectified images is applied to rectified
images. No ROS here: the camera_info is any object with CameraInfo's fields (see ``sage_core.lens``).

The rectified camera matrix K' (what ``rectified_model`` publishes):

- P set in the camera_info (camera_calibration always sets it): K' = P[:3, :3] with the rotation R,
  as image_geometry's ``rectifyImage`` does, so the result equals image_proc's ``image_rect``.
- P unset (all zero): R is ignored (without P it defines no rectified image, and a rotation is itself
  a homography, which the calibrated thermal -> rgb homography absorbs), and K' is chosen so that every
  rectified pixel sees the scene (OpenCV's alpha = 0, fisheye balance = 0). Keeping all source pixels
  (alpha = 1) instead leaves curved black wedges at the borders: the aligner crops to the straight
  outline of the two cameras' common view, so the wedges would reach the fused image, and their edges
  would be matched as scene structure by the registration. The few degrees of field lost at the
  periphery are outside the common view of a typical rig anyway.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from sage_core.errors import ConfigError, FusionInputError
from sage_core.lens import DISTORTION_MODELS, PLUMB_BOB, LensModel, undistort_points

__all__ = ["DISTORTION_MODELS", "LensModel", "Rectifier", "RectifierCache", "new_camera_matrix"]


def _inscribed_camera_matrix(lens: LensModel, samples: int = 64, margin_px: float = 1.0) -> np.ndarray:
    """K' whose every pixel sees the scene, with the pixel aspect of K, for a pinhole (non-fisheye) lens.

    The raw image's border, undistorted, bounds the valid area; the largest axis-aligned rectangle inside
    it is found from the innermost point of each side (``margin_px`` inside, so that bilinear sampling
    never reaches the black outside), and K' maps the output image onto that rectangle. Computed here
    rather than with ``cv2.getOptimalNewCameraMatrix``, whose alpha = 0 fit stretches x and y apart and
    leaves a border of invalid pixels before OpenCV 4.6.
    """
    w, h = lens.image_size
    t = np.linspace(0.0, 1.0, samples)
    along_x, along_y = t * (w - 1), t * (h - 1)
    sides = [np.column_stack([along_x, np.zeros(samples)]), np.column_stack([along_x, np.full(samples, h - 1.0)]),
             np.column_stack([np.zeros(samples), along_y]), np.column_stack([np.full(samples, w - 1.0), along_y])]
    top, bottom, left, right = (undistort_points(lens, side) for side in sides)
    k = lens.camera_matrix
    x0, x1 = (left[:, 0].max() + margin_px - k[0, 2]) / k[0, 0], (right[:, 0].min() - margin_px - k[0, 2]) / k[0, 0]
    y0, y1 = (top[:, 1].max() + margin_px - k[1, 2]) / k[1, 1], (bottom[:, 1].min() - margin_px - k[1, 2]) / k[1, 1]
    zoom = max((w - 1) / (k[0, 0] * (x1 - x0)), (h - 1) / (k[1, 1] * (y1 - y0)))
    fx, fy = zoom * k[0, 0], zoom * k[1, 1]
    return np.array([[fx, 0.0, (w - 1) / 2 - fx * (x0 + x1) / 2],
                     [0.0, fy, (h - 1) / 2 - fy * (y0 + y1) / 2],
                     [0.0, 0.0, 1.0]])


def new_camera_matrix(lens: LensModel) -> np.ndarray:
    """K' for a lens without P: the largest view whose every pixel is valid (see the module's docstring)."""
    if lens.is_fisheye:
        # balance 0: the longest focal length of OpenCV's range, no black border (at most a few corner pixels).
        k, d, size = lens.camera_matrix, lens.coefficients, lens.image_size
        return cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(k, d, size, np.eye(3), balance=0.0)
    return _inscribed_camera_matrix(lens)


class Rectifier:
    """Undistorts one camera's images: maps built once (fixed-point CV_16SC2, the fast remap path), then one
    ``cv2.remap`` per frame (bilinear, 0 outside the raw image). Thread-safe: ``__call__`` only reads the maps."""

    def __init__(self, lens: LensModel) -> None:
        if not lens.needs_rectification:  # and its K may be unset (an uncalibrated driver's zeros): nothing to build
            raise ConfigError(f"{lens.source or 'camera_info'}: no distortion ({lens.distortion_model or 'no model'}, "
                              "d all zero): nothing to rectify; RectifierCache.get returns None for such a camera")
        started = time.perf_counter()
        self.lens = lens
        projection = lens.projection
        if projection is not None:
            self.new_camera_matrix, self.rotation = projection[:, :3].copy(), lens.rotation
            self._baseline = projection[:, 3].copy()  # P's Tx, Ty (stereo): kept in the rectified model
        else:
            self.new_camera_matrix, self.rotation = new_camera_matrix(lens), np.eye(3)
            self._baseline = np.zeros(3)
        build = cv2.fisheye.initUndistortRectifyMap if lens.is_fisheye else cv2.initUndistortRectifyMap
        self._map1, self._map2 = build(lens.camera_matrix, lens.coefficients, self.rotation, self.new_camera_matrix,
                                       lens.image_size, cv2.CV_16SC2)
        self._rounded: np.ndarray | None = None  # the maps rounded, for nearest-pixel remaps
        #: Milliseconds the maps took to build (once per camera_info).
        self.build_ms = (time.perf_counter() - started) * 1e3

    @property
    def image_size(self) -> tuple[int, int]:
        """(w, h) of the images this rectifier takes and returns."""
        return self.lens.image_size

    def __call__(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """The rectified image: same size, same pixel type and channels (mono8, mono16, float32, bgr8, ...).
        ``nearest``: each pixel takes its nearest source pixel, never a blend (a depth image's edges)."""
        h, w = image.shape[:2]
        if (w, h) != self.image_size:
            lens = self.lens
            binned = "" if lens.binning == (1, 1) else f" (binning {lens.binning_x}x{lens.binning_y} of " \
                                                       f"{lens.width}x{lens.height})"
            raise FusionInputError(
                f"{lens.source or 'camera_info'}: image is {w}x{h} but the camera_info describes "
                f"{self.image_size[0]}x{self.image_size[1]}{binned}; rectification needs images of the calibrated "
                "size (publish a camera_info for this resolution, or do not resize before rectifying)")
        if nearest:
            out = cv2.remap(image, self._nearest_map(), None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
        else:
            out = cv2.remap(image, self._map1, self._map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
        return out.reshape(image.shape) if out.ndim != image.ndim else out  # OpenCV drops a trailing 1-channel axis

    def _nearest_map(self) -> np.ndarray:
        """The maps rounded to whole pixels (built on first use): OpenCV's nearest remap of fixed-point maps takes
        their integer part (the floor), and passing the fraction table with it gives wrong pixels."""
        if self._rounded is None:
            fractions = self._map2.astype(np.int32)  # 5 bits of y, then 5 bits of x (INTER_TAB_SIZE 32)
            up = np.stack([(fractions & 31) >= 16, (fractions >> 5) >= 16], axis=-1)
            self._rounded = (self._map1 + up).astype(np.int16)
        return self._rounded

    def rectified_model(self) -> LensModel:
        """The camera model of the rectified images: plumb_bob, d = 0, K = K', R = I, P = [K' | P's Tx, Ty or 0]."""
        w, h = self.image_size
        p = np.column_stack([self.new_camera_matrix, self._baseline])
        source = f"{self.lens.source} (rectified)" if self.lens.source else "rectified"
        return LensModel(width=w, height=h, distortion_model=PLUMB_BOB, d=(0.0,) * 5,
                         k=self.new_camera_matrix.ravel(), r=np.eye(3).ravel(), p=p.ravel(), source=source)


def lens_key(info) -> tuple:
    """The lens fields of a CameraInfo as one comparable tuple: cheap (no validation, no copies to float)."""
    return (info.width, info.height, info.distortion_model, tuple(info.d), tuple(info.k), tuple(info.r),
            tuple(info.p), getattr(info, "binning_x", 0), getattr(info, "binning_y", 0))


class RectifierCache:
    """One camera's rectifier for its latest camera_info, rebuilt only when the lens fields change.

    camera_info comes at the image rate with the same content: ``get`` compares a tuple of the fields and
    returns the rectifier it already has. None: the camera is not distorted (nothing to do). A camera_info
    that cannot be used raises ConfigError, again on each call with it, without rebuilding. Thread-safe.
    """

    def __init__(self, source: str = "") -> None:
        #: Named in error messages: the camera_info topic or file.
        self.source = source
        #: How many times maps were built (a test and the node's diagnostics can read it).
        self.builds = 0
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._rectifier: Rectifier | None = None
        self._error: str | None = None

    def get(self, info) -> Rectifier | None:
        """The Rectifier for this camera_info, or None when its images need no rectification."""
        key = lens_key(info)
        with self._lock:
            if key != self._key:
                self._key, self._rectifier, self._error = key, None, None
                try:
                    lens = LensModel.from_camera_info(info, self.source)
                    if lens.needs_rectification:
                        self._rectifier = Rectifier(lens)
                        self.builds += 1
                except ConfigError as exc:
                    self._error = str(exc)
            rectifier, error = self._rectifier, self._error
        if error is not None:
            raise ConfigError(error)
        return rectifier
