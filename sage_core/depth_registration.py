"""Per-pixel registration from a depth image: each RGB pixel takes the thermal value of its own 3-D point.

A depth image registered to the RGB camera (RealSense's ``aligned_depth_to_color``: ``16UC1`` millimetres
or ``32FC1`` metres, 0 or NaN where there is no depth) says how far every RGB pixel is. With the rig
(:class:`~sage_core.rig.Rig`), the RGB pixel ``p`` at depth ``Z`` is seen by the thermal camera at
``(A p + b / Z)`` (homogeneous; ``A``: the far plane's homography, ``b``: the baseline's parallax). ``A p``
is fixed for an output grid, so a frame costs a few multiply-adds per pixel and one ``cv2.remap``
(:class:`ThermalLookup`); pixels without depth take the registration distance's plane instead.

Occlusion. Beside a near object, the RGB camera sees background the thermal camera cannot (the near object
hides it): the thermal pixel there shows the near object. Warping would paint the object's heat onto that
background a second time (a ghost). Every pixel with a depth is splatted into a z-buffer on the thermal grid
(the nearest surface per thermal pixel); a pixel farther than that surface by more than ``occlusion_px`` of
parallax is hidden from the thermal camera and is left out: its thermal value is 0, as outside the thermal
view, never copied from the occluder. Pixels without depth are tested against the z-buffer too (a hole beside
a near object is usually background), but do not occlude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.errors import FusionInputError
from sage_core.rig import Rig

#: Depth encodings taken: 16-bit integers are millimetres (0: no depth), 32-bit floats metres (0, NaN: none).
DEPTH_DTYPES = (np.dtype(np.uint16), np.dtype(np.float32))


def depth_in_metres(depth: np.ndarray) -> np.ndarray:
    """A depth image (uint16 mm or float32 m, H x W) as float32 metres, 0 where there is no depth."""
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or depth.dtype not in DEPTH_DTYPES:
        raise FusionInputError(f"depth image must be H x W uint16 (mm) or float32 (m), got {depth.dtype} "
                               f"{depth.shape}")
    if depth.dtype == np.uint16:
        return depth.astype(np.float32) * np.float32(0.001)
    metres = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)  # a copy: the caller's image stays as it is
    return np.maximum(metres, np.float32(0.0), out=metres)


def fill_holes(depth_m: np.ndarray, radius_px: int) -> np.ndarray:
    """Holes (0) within ``radius_px`` of a depth take the farthest depth around them (the background: holes beside
    near objects are where the depth camera's second view could not see the background); others stay 0."""
    holes = depth_m <= 0
    if radius_px <= 0 or not holes.any():
        return depth_m
    farthest = cv2.dilate(depth_m, np.ones((2 * radius_px + 1, 2 * radius_px + 1), np.uint8))
    out = depth_m.copy()
    np.copyto(out, farthest, where=holes)
    return out


#: NumPy 1.25 made ``ufunc.at`` fast: a 640x480 frame's splats take 0.2-1 ms with ``np.maximum.at`` there, 35 ms
#: before (Ubuntu 22.04's NumPy), where sorting by cell and reducing takes about 3 ms.
FAST_UFUNC_AT = np.lib.NumpyVersion(np.__version__) >= "1.25.0"


def largest_per_cell(cells: np.ndarray, values: np.ndarray, size: int, by_sorting: bool = not FAST_UFUNC_AT
                     ) -> np.ndarray:
    """The largest of ``values`` (float32) falling in each of ``size`` cells, 0 where none: ``np.maximum.at``, or
    with ``by_sorting`` a stable sort by cell (timsort: the cells come nearly in order, the output grid's scan
    running along the thermal grid's) and ``np.maximum.reduceat``."""
    out = np.zeros(size, np.float32)
    if not by_sorting:
        np.maximum.at(out, cells, values)
        return out
    if cells.size == 0:
        return out
    order = np.argsort(cells, kind="stable")
    cells, values = cells[order], values[order]
    starts = np.flatnonzero(np.concatenate(([True], cells[1:] != cells[:-1])))
    out[cells[starts]] = np.maximum.reduceat(values, starts)
    return out


@dataclass
class DepthMaps:
    """Where each output pixel samples the thermal image, and why some do not."""

    map_x: np.ndarray  # float32, thermal pixel x of each output pixel (-1: none)
    map_y: np.ndarray
    measured: np.ndarray  # bool: the pixel had a depth (else the registration distance)
    occluded: np.ndarray  # bool: hidden from the thermal camera by a nearer surface (left out)


class ThermalLookup:
    """The thermal pixel of every pixel of an output grid, from a depth image on the RGB grid.

    ``output_to_rgb``: 3x3 from output pixels to RGB pixels (the aligner's crop and resize, inverted);
    ``output_size``, ``rgb_size``: (w, h). Built once per rig and grid; :meth:`maps` per frame. Thread-safe.
    """

    def __init__(self, rig: Rig, output_to_rgb: np.ndarray, output_size: tuple[int, int],
                 occlusion_px: float = 1.0, fill_holes_px: int = 0) -> None:
        self.rig, self.output_size, self.fill_holes_px = rig, tuple(output_size), fill_holes_px
        w, h = output_size
        a, b = rig.rgb_to_thermal()
        m = a @ np.asarray(output_to_rgb, np.float64)
        xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)[:, None]
        self._a = [(m[i, 0] * xs + m[i, 1] * ys + m[i, 2]).astype(np.float32) for i in range(3)]
        self._b = [np.float32(v) for v in b]
        self._rgb_rows, self._rgb_cols = self._depth_indices(np.asarray(output_to_rgb, np.float64), output_size)
        # Parallax (thermal px) per unit of inverse depth: turns occlusion_px into an inverse-depth margin.
        parallax = float(np.linalg.norm(rig.thermal.k[:2, :2] @ (rig.image_rotation.T @ rig.image_translation)[:2]))
        self._occlusion_margin = occlusion_px / parallax if parallax > 1e-9 else math.inf
        # Thermal pixels per output pixel: a finer thermal grid leaves gaps between the splats of one surface.
        thermal_per_output = abs(np.linalg.det(m[:2, :2] / max(abs(m[2, 2]), 1e-12))) ** 0.5
        self._reach = max(1, math.ceil((thermal_per_output - 1) / 2))

    @staticmethod
    def _depth_indices(output_to_rgb: np.ndarray, output_size: tuple[int, int]):
        """Rows and columns of the RGB pixel nearest each output row / column (the map is axis-aligned), or
        slices when the output is a crop of the RGB grid at its own scale."""
        w, h = output_size
        sx, ox, sy, oy = output_to_rgb[0, 0], output_to_rgb[0, 2], output_to_rgb[1, 1], output_to_rgb[1, 2]
        if abs(output_to_rgb[0, 1]) > 1e-9 or abs(output_to_rgb[1, 0]) > 1e-9:
            raise FusionInputError("the output grid must be an axis-aligned crop and resize of the rgb image")
        if np.isclose(sx, 1) and np.isclose(sy, 1) and np.isclose(ox, round(ox)) and np.isclose(oy, round(oy)):
            return slice(round(oy), round(oy) + h), slice(round(ox), round(ox) + w)
        return (np.rint(sy * np.arange(h) + oy).astype(np.intp)[:, None],
                np.rint(sx * np.arange(w) + ox).astype(np.intp)[None, :])

    def depth_on_output(self, depth_m: np.ndarray) -> np.ndarray:
        """The RGB-grid depth (metres) at each output pixel (nearest: depth is never blended across an edge)."""
        rows, cols = self._rgb_rows, self._rgb_cols
        return fill_holes(np.ascontiguousarray(depth_m[rows, cols]), self.fill_holes_px)

    def maps(self, depth_m: np.ndarray, distance: float) -> DepthMaps:
        """Thermal sampling maps for one depth image (metres on the RGB grid, 0: none); pixels without depth take
        the plane at ``distance`` (m, inf: the far plane)."""
        depth = self.depth_on_output(depth_m)
        measured = depth > 0
        inverse = np.full(depth.shape, 0.0 if math.isinf(distance) else 1.0 / distance, np.float32)
        np.divide(np.float32(1.0), depth, out=inverse, where=measured)
        (a0, a1, a2), (b0, b1, b2) = self._a, self._b
        # OpenCV's arithmetic (one pass each, on all cores) for q = (a + b w) / (a2 + b2 w).
        scale = cv2.scaleAdd(inverse, float(b2), a2)
        behind = scale <= 1e-6 if scale.min() <= 1e-6 else None  # a point behind the thermal camera: none
        if behind is not None:
            scale[behind] = 1.0
        np.reciprocal(scale, out=scale)
        map_x = cv2.multiply(cv2.scaleAdd(inverse, float(b0), a0), scale)
        map_y = cv2.multiply(cv2.scaleAdd(inverse, float(b1), a1), scale)
        if behind is not None:
            map_x[behind], map_y[behind] = -2.0, -2.0
            measured &= ~behind
        thermal_inverse = cv2.multiply(inverse, scale)  # the thermal camera's inverse depth of each point
        occluded = self._occluded(map_x, map_y, thermal_inverse, measured)
        return DepthMaps(map_x, map_y, measured, occluded)

    def _occluded(self, map_x: np.ndarray, map_y: np.ndarray, thermal_inverse: np.ndarray,
                  splat: np.ndarray) -> np.ndarray:
        """Pixels hidden from the thermal camera: farther, by more than the occlusion margin, than a surface
        splatted into a thermal pixel their bilinear sample reads (so an occluder's edge never bleeds in)."""
        if math.isinf(self._occlusion_margin):  # no baseline: nothing is hidden from one camera only
            return np.zeros(map_x.shape, bool)
        tw, th = self.rig.thermal.size
        # The z-buffer: the largest inverse depth (the nearest surface) splatted into each thermal pixel.
        xs, ys, values = map_x[splat], map_y[splat], thermal_inverse[splat]
        cols, rows = np.rint(xs).astype(np.int32), np.rint(ys).astype(np.int32)
        inside = (cols >= 0) & (cols < tw) & (rows >= 0) & (rows < th)
        nearest = largest_per_cell((rows * tw + cols)[inside], values[inside], tw * th)
        # A sample reads the thermal pixels within one of its nearest: a max filter, wider where the thermal
        # grid is finer than the samples splatted into it (no gaps between the splats of one surface).
        size = 2 * self._reach + 1
        nearest = cv2.dilate(nearest.reshape(th, tw), np.ones((size, size), np.uint8))
        # Looked up at each pixel's nearest thermal pixel (0 outside: nothing hides what is not seen).
        seen = cv2.remap(nearest, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return thermal_inverse < seen - np.float32(self._occlusion_margin)

    def warp(self, thermal: np.ndarray, maps: DepthMaps) -> np.ndarray:
        """The thermal image on the output grid along ``maps``; occluded pixels and pixels outside the thermal
        view are 0."""
        out = cv2.remap(thermal, maps.map_x, maps.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0)
        out[maps.occluded] = 0
        return out
