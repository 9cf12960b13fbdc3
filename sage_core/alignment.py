"""Bringing a thermal and a visible camera onto one pixel grid.

The two cameras rarely share a resolution or an optical axis. One of them is the
*reference*: its pixel grid (and its stamp, frame_id and intrinsics) is the
output's. The other is mapped onto it, by a fixed 3x3 homography for a rigid
rig calibrated once (thermal pixels -> visible pixels, as a calibration tool
gives it), or by a plain resize when the cameras are already co-registered.
The output is cropped to the area both cameras see, then resized to the
requested output size. The other image is warped straight to the output grid in
one ``warpPerspective`` (crop and scale folded into the matrix), so each frame
is resampled once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from sage_core.cameras import Camera
from sage_core.errors import ConfigError, FusionInputError


@dataclass
class AlignmentConfig:
    reference: str = "rgb"
    output_width: int = 0  # 0 and 0: the cropped reference size
    output_height: int = 0
    homography: list[float] = field(default_factory=list)  # 9 values, row-major, thermal -> rgb pixels; [] = none
    crop_to_valid: bool = True

    def validate(self) -> None:
        cameras = [camera.label for camera in Camera]
        if self.reference not in cameras:
            raise ConfigError(f"reference camera {self.reference!r}; expected one of {', '.join(cameras)}")
        if (self.output_width == 0) != (self.output_height == 0) or self.output_width < 0 or self.output_height < 0:
            raise ConfigError(
                f"output size {self.output_width}x{self.output_height}: give both width and height > 0, or both 0 "
                "(keep the reference camera's size)")
        if self.homography:
            if len(self.homography) != 9 or not all(math.isfinite(v) for v in self.homography):
                raise ConfigError(f"homography must be 9 finite numbers (3x3 row-major), got {self.homography}")
            if abs(np.linalg.det(np.asarray(self.homography, np.float64).reshape(3, 3))) < 1e-12:
                raise ConfigError("homography is singular (determinant 0): it cannot map thermal to rgb pixels")


@dataclass(frozen=True)
class AlignmentPlan:
    """Everything needed to align frames of one (thermal size, rgb size) combination."""

    reference_size: tuple[int, int]  # (w, h) of the reference camera
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in reference pixels (x1, y1 exclusive)
    output_size: tuple[int, int]  # (w, h)
    other_to_output: np.ndarray  # 3x3: other camera's pixels -> output pixels

    @property
    def scale(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.crop
        return self.output_size[0] / (x1 - x0), self.output_size[1] / (y1 - y0)

    @property
    def is_identity(self) -> bool:
        return (self.crop == (0, 0, *self.reference_size) and self.output_size == self.reference_size
                and np.allclose(self.other_to_output, np.eye(3)))


def _resize_matrix(src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Pixel-centre-exact resize: x' = (x + 0.5) * s - 0.5, as cv2.resize maps pixels."""
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)


def _inner_rectangle(matrix: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int, int, int]:
    """Largest axis-aligned box inside the mapped source outline (for a convex, roughly upright quad)."""
    w, h = src
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float64)
    mapped = cv2.perspectiveTransform(corners[None], matrix)[0]
    (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = mapped
    x0 = max(0, math.ceil(max(tlx, blx) + 0.5))
    y0 = max(0, math.ceil(max(tly, try_) + 0.5))
    x1 = min(dst[0], math.floor(min(trx, brx) + 0.5))
    y1 = min(dst[1], math.floor(min(bly, bry) + 0.5))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise FusionInputError(
            f"the homography maps the other camera ({w}x{h}) to outside the reference image ({dst[0]}x{dst[1]}): "
            "no common area to fuse")
    return x0, y0, x1, y1


class Aligner:
    """Aligns (thermal, rgb) frames onto the reference grid; plans are cached per input sizes."""

    def __init__(self, config: AlignmentConfig | None = None) -> None:
        self.config = config or AlignmentConfig()
        self.config.validate()
        #: The camera whose pixel grid, stamp, frame_id and intrinsics the output takes.
        self.reference = Camera.parse(self.config.reference)
        self._plans: dict[tuple, AlignmentPlan] = {}

    def plan(self, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> AlignmentPlan:
        """Plan for frames of these sizes, ``(w, h)`` each."""
        key = (thermal_size, rgb_size)
        if key not in self._plans:
            self._plans[key] = self._make_plan(thermal_size, rgb_size)
        return self._plans[key]

    def _make_plan(self, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> AlignmentPlan:
        cfg = self.config
        if self.reference is Camera.RGB:
            ref_size, other_size = rgb_size, thermal_size
        else:
            ref_size, other_size = thermal_size, rgb_size
        if cfg.homography:
            thermal_to_rgb = np.asarray(cfg.homography, np.float64).reshape(3, 3)
            other_to_ref = thermal_to_rgb if self.reference is Camera.RGB else np.linalg.inv(thermal_to_rgb)
        else:
            other_to_ref = _resize_matrix(other_size, ref_size)
        crop = _inner_rectangle(other_to_ref, other_size, ref_size) if cfg.crop_to_valid else (0, 0, *ref_size)
        x0, y0, x1, y1 = crop
        out_size = (cfg.output_width, cfg.output_height) if cfg.output_width else (x1 - x0, y1 - y0)
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        crop_to_out = _resize_matrix((x1 - x0, y1 - y0), out_size)
        return AlignmentPlan(ref_size, crop, out_size, crop_to_out @ shift @ other_to_ref)

    def _reference_to_output(self, image: np.ndarray, plan: AlignmentPlan) -> np.ndarray:
        x0, y0, x1, y1 = plan.crop
        image = image[y0:y1, x0:x1]
        if (x1 - x0, y1 - y0) == plan.output_size:
            return image
        shrinking = plan.output_size[0] < (x1 - x0)
        return cv2.resize(image, plan.output_size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

    def __call__(self, thermal: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (thermal, rgb) on the output grid, same size, same pixel types as given."""
        plan = self.plan((thermal.shape[1], thermal.shape[0]), (rgb.shape[1], rgb.shape[0]))
        if plan.is_identity:
            return thermal, rgb
        ref, other = (rgb, thermal) if self.reference is Camera.RGB else (thermal, rgb)
        ref = self._reference_to_output(ref, plan)
        other = cv2.warpPerspective(other, plan.other_to_output, plan.output_size, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return (other, ref) if self.reference is Camera.RGB else (ref, other)

    def align_one(self, image: np.ndarray, camera: Camera, other_size: tuple[int, int]) -> np.ndarray:
        """One camera's image on the output grid, when its partner (of size ``other_size``) is missing."""
        size = (image.shape[1], image.shape[0])
        sizes = (size, other_size) if camera is Camera.THERMAL else (other_size, size)
        plan = self.plan(*sizes)
        if camera is self.reference:
            return self._reference_to_output(image, plan)
        return cv2.warpPerspective(image, plan.other_to_output, plan.output_size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def transform_intrinsics(k: list[float], p: list[float], plan: AlignmentPlan) -> tuple[list[float], list[float]]:
    """Reference camera's K (3x3) and P (3x4), row-major, after the plan's crop and resize."""
    x0, y0, _, _ = plan.crop
    sx, sy = plan.scale

    def apply(matrix: np.ndarray) -> np.ndarray:
        out = matrix.copy()
        # Principal point in pixel-centre convention: shift by the crop, then scale like _resize_matrix.
        out[0] = matrix[0] * sx
        out[1] = matrix[1] * sy
        out[0, 2] = (matrix[0, 2] - x0 * matrix[2, 2] + 0.5) * sx - 0.5
        out[1, 2] = (matrix[1, 2] - y0 * matrix[2, 2] + 0.5) * sy - 0.5
        return out

    new_k = apply(np.asarray(k, np.float64).reshape(3, 3))
    new_p = apply(np.asarray(p, np.float64).reshape(3, 4))
    return new_k.ravel().tolist(), new_p.ravel().tolist()
