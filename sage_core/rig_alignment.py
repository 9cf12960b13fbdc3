"""The aligner of a rig with a baseline: the plane at the registration distance, or every pixel's own depth.

:class:`RigAligner` is an :class:`~sage_core.alignment.Aligner` whose homography is the rig's for the plane at
``distance`` (:meth:`sage_core.rig.Rig.homography`), so everything downstream (crop, output size, passthrough,
the fused camera_info) works as with a calibrated homography. The crop is the far plane's at every distance:
the output's size and camera_info never change when the distance does (at short distances a band on one side
of the output then has no thermal). :meth:`RigAligner.align_depth` registers per pixel from a depth image on
the RGB grid (``depth_registration.py``), pixels without depth falling back to the distance's plane.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass

import numpy as np

from sage_core.alignment import Aligner, AlignmentConfig, AlignmentPlan
from sage_core.cameras import Camera
from sage_core.depth_registration import DepthMaps, ThermalLookup, depth_in_metres
from sage_core.errors import ConfigError, FusionInputError
from sage_core.rig import Rig


@dataclass(frozen=True)
class DepthSettings:
    """How depth images are used: ``occlusion_px``, the parallax (thermal pixels) by which a surface must lie
    behind the nearest one in its thermal pixel to count as hidden; ``fill_holes_px``, holes this close to a
    depth take the farthest depth around them (0: every hole takes the registration distance)."""

    occlusion_px: float = 1.0
    fill_holes_px: int = 4

    def validate(self) -> None:
        if not (self.occlusion_px > 0 and math.isfinite(self.occlusion_px)):
            raise ConfigError(f"occlusion margin {self.occlusion_px} px: expected a number > 0")
        if not 0 <= self.fill_holes_px <= 64:
            raise ConfigError(f"depth hole filling {self.fill_holes_px} px: expected 0 to 64")


class RigAligner(Aligner):
    """Aligns frames of a rig by its geometry; see the module docstring. Immutable once made: a new distance
    is a new aligner (:meth:`at_distance`), which shares the per-grid lookups of this one."""

    def __init__(self, config: AlignmentConfig, rig: Rig, distance: float = math.inf,
                 depth: DepthSettings | None = None, _lookups: dict | None = None) -> None:
        if config.homography:
            raise ConfigError("a homography and a rig were both given: the rig's extrinsics and the registration "
                              "distance define the homography; give one or the other")
        self.rig, self.distance, self.depth = rig, float(distance), depth or DepthSettings()
        self.depth.validate()
        self.plane = rig.homography(self.distance)  # checks the distance
        super().__init__(dataclasses.replace(config, homography=rig.homography(math.inf).ravel().tolist()))
        self._lookups = {} if _lookups is None else _lookups
        self._lookup_lock = threading.Lock()

    def at_distance(self, distance: float) -> RigAligner:
        """The same rig registered at another distance (m, inf: the far plane)."""
        return RigAligner(self.config_without_homography(), self.rig, distance, self.depth, self._lookups)

    def config_without_homography(self) -> AlignmentConfig:
        return dataclasses.replace(self.config, homography=[])

    def _make_plan(self, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> AlignmentPlan:
        self.rig.thermal.check_size(thermal_size, "thermal")
        self.rig.rgb.check_size(rgb_size, "rgb")
        plan = super()._make_plan(thermal_size, rgb_size)  # the far plane's crop and output size
        far = np.asarray(self.config.homography, np.float64).reshape(3, 3)
        if self.reference is Camera.RGB:
            far_to_ref, plane_to_ref = far, self.plane
        else:
            far_to_ref, plane_to_ref = np.linalg.inv(far), np.linalg.inv(self.plane)
        ref_to_output = plan.other_to_output @ np.linalg.inv(far_to_ref)
        return dataclasses.replace(plan, other_to_output=ref_to_output @ plane_to_ref)

    def lookup(self, plan: AlignmentPlan) -> ThermalLookup:
        """The per-pixel lookup of this plan's output grid (built once; shared by every distance)."""
        if self.reference is not Camera.RGB:
            raise FusionInputError("per-pixel registration from depth needs the rgb camera as the reference: the depth "
                                   "image is on the rgb camera's grid (reference_camera: rgb)")
        key = (plan.crop, plan.output_size, plan.reference_size)
        with self._lookup_lock:
            if key not in self._lookups:
                x0, y0, x1, y1 = plan.crop
                sx, sy = plan.scale
                crop_to_out = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
                shift = np.array([[1.0, 0, -x0], [0, 1, -y0], [0, 0, 1]])
                self._lookups[key] = ThermalLookup(self.rig, np.linalg.inv(crop_to_out @ shift), plan.output_size,
                                                   self.depth.occlusion_px, self.depth.fill_holes_px)
            return self._lookups[key]

    def depth_maps(self, thermal_size: tuple[int, int], depth: np.ndarray) -> tuple[AlignmentPlan, DepthMaps]:
        """The plan and the per-pixel thermal maps for a depth image on the RGB grid (uint16 mm or float32 m)."""
        rgb_size = (depth.shape[1], depth.shape[0])
        plan = self.plan(thermal_size, rgb_size)
        return plan, self.lookup(plan).maps(depth_in_metres(depth), self.distance)

    def align_depth(self, thermal: np.ndarray, rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(thermal, rgb) on the output grid, the thermal registered per pixel by ``depth`` (the RGB image's size)."""
        if depth.shape[:2] != rgb.shape[:2]:
            raise FusionInputError(f"depth image is {depth.shape[1]}x{depth.shape[0]} but the rgb image is "
                                   f"{rgb.shape[1]}x{rgb.shape[0]}: the depth must be registered to the rgb camera "
                                   "(aligned_depth_to_color)")
        plan, maps = self.depth_maps((thermal.shape[1], thermal.shape[0]), depth)
        return self.lookup(plan).warp(thermal, maps), self._reference_to_output(rgb, plan)
