"""One frame pair's way through the product: raw thermal normalised (8-bit thermal steadied), both cameras on one
grid, fused.

The ROS node, ``sage-fuse`` and offline tools share :class:`FramePipeline`, so a file, a bag and a
live stream give the same picture for the same settings. Thread-safe: the node's worker fuses while
its parameter callback may change the thermal normalisation.

With a :class:`~sage_core.fusion_smoothing.SmoothingConfig` that is on (``strength``, a gain limit or ``change_cap``
above 0: the node's defaults) the fusion model's coefficients are averaged over time and their gain limited
(``fusion_smoothing.py``), and the fused frame's change between frames is capped by
its cameras' (``change_cap.py``), where the backend exposes the coefficients (an affine model's CPU split: the
shipped default on a CPU); elsewhere the setting has no effect (:attr:`FramePipeline.smoothing_active`). The
smoothing step runs under the pipeline's lock, so with several inference workers frames are smoothed in the
order they reach it; a frame whose predecessor in that order is not yet capped passes the cap uncapped.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from sage_core.alignment import Aligner
from sage_core.cameras import Camera
from sage_core.color import gray_to_uint8
from sage_core.errors import FusionInputError
from sage_core.fuser import Fuser
from sage_core.fusion_smoothing import CoefficientSmoother, SmoothingConfig
from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig


class FramePipeline:
    """Thermal normalisation, alignment and fusion of one pair; see the module docstring."""

    def __init__(self, fuser: Fuser, normalizer: ThermalNormalizer | None = None,
                 aligner: Aligner | None = None, smoothing: SmoothingConfig | None = None,
                 machines: Fuser | None = None) -> None:
        self.fuser = fuser
        #: The second stream's model (for machines: the shipped detection model), fusing the same aligned pair.
        self.machines = machines
        self.normalizer = normalizer or ThermalNormalizer()
        self.aligner = aligner or Aligner()
        self.smoother = CoefficientSmoother(smoothing)
        self._lock = threading.Lock()  # guards the normaliser's and the smoother's state and settings

    @property
    def reference(self) -> Camera:
        """The camera whose grid, stamp and frame_id the output takes."""
        return self.aligner.reference

    def reconfigure_thermal(self, config: ThermalNormalizerConfig) -> None:
        """New normalisation settings (validated first); takes effect from the next frame."""
        with self._lock:
            if config != self.normalizer.config:
                self.normalizer.reconfigure(config)

    @property
    def smoothing_active(self) -> bool:
        """Whether the fusion smoothing is on and this fuser's backend exposes coefficients to smooth."""
        return self.smoother.enabled and self.fuser.filters_coefficients

    def reconfigure_smoothing(self, config: SmoothingConfig) -> None:
        """New fusion smoothing settings (validated first); the average restarts from the next frame."""
        with self._lock:
            if config != self.smoother.config:
                self.smoother.reconfigure(config)

    def reset_smoothing(self) -> None:
        """Forget the smoothed coefficients (a new recording, a jump in time)."""
        with self._lock:
            self.smoother.reset()

    def thermal_unit(self, raw: np.ndarray) -> np.ndarray:
        """Raw thermal -> what the model takes: 8-bit (tone-mapped by its camera) as is but for its camera's gain
        steps, 16-bit and float through the normaliser.

        Files may store thermal with 3 or 4 (gray) channels; they become one channel first.
        """
        if raw.dtype == np.uint8 and not self.normalizer.steadier.enabled:
            return raw
        if raw.ndim == 3:
            raw = raw[..., 0] if raw.shape[2] == 1 else cv2.cvtColor(
                raw, cv2.COLOR_BGR2GRAY if raw.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        with self._lock:
            return self.normalizer.steady(raw) if raw.dtype == np.uint8 else self.normalizer(raw)

    def fuse(self, thermal_raw: np.ndarray, rgb_bgr: np.ndarray, gray: bool = False, depth: np.ndarray | None = None,
             aligner: Aligner | None = None) -> np.ndarray:
        """Raw thermal (H x W) + BGR (or gray) visible -> fused BGR uint8 (or gray uint8 with ``gray``).
        ``aligner``: instead of the pipeline's (a rig's, for the current intrinsics and distance); ``depth``: the
        visible image's depth, registering thermal per pixel (a ``RigAligner`` only)."""
        return self.fuse_streams(thermal_raw, rgb_bgr, gray=gray, depth=depth, aligner=aligner)[0]

    def fuse_streams(self, thermal_raw: np.ndarray, rgb_bgr: np.ndarray, gray: bool = False,
                     depth: np.ndarray | None = None, aligner: Aligner | None = None, people: bool = True,
                     machines: bool = False) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Both streams of one pair, normalised and aligned once (as :meth:`fuse`): ``people`` the model's frame,
        ``machines`` the second model's (None when not asked for or there is none)."""
        aligner = aligner or self.aligner
        if depth is None:
            thermal, rgb = aligner(self.thermal_unit(thermal_raw), rgb_bgr)
        elif hasattr(aligner, "align_depth"):
            thermal, rgb = aligner.align_depth(self.thermal_unit(thermal_raw), rgb_bgr, depth)
        else:
            raise FusionInputError("a depth image registers thermal per pixel only with a rig (its extrinsics)")
        first = second = None
        if people:
            smooth = _FrameSteps(self.smoother, self._lock) if self.smoother.enabled else None
            first = self.fuser.fuse_gray(thermal, rgb, smooth) if gray else self.fuser.fuse(thermal, rgb, smooth)
        if machines and self.machines is not None:
            second = self.machines.fuse_gray(thermal, rgb) if gray else self.machines.fuse(thermal, rgb)
        return first, second

    def passthrough(self, camera: Camera, image: np.ndarray, other_size: tuple[int, int],
                    aligner: Aligner | None = None) -> np.ndarray:
        """One camera's image alone on the output grid (its partner is missing), as uint8."""
        if camera is Camera.THERMAL:
            image = self.thermal_unit(image)
        image = (aligner or self.aligner).align_one(image, camera, other_size)
        return image if image.dtype == np.uint8 else gray_to_uint8(image)


class _FrameSteps:
    """One frame's temporal steps, under the pipeline's lock: its coefficients averaged (``__call__``), then the
    change cap on its fused frame (``finish``) with the motion measured for this very frame, which another
    worker's frame averaged in between does not change."""

    def __init__(self, smoother: CoefficientSmoother, lock: threading.Lock) -> None:
        self._smoother, self._lock = smoother, lock
        self._motion: tuple[int, np.ndarray | None] | None = None

    def __call__(self, low: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        with self._lock:
            low = self._smoother(low, pooled)
            self._motion = self._smoother.motion
            return low

    def finish(self, fused: np.ndarray, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        if self._motion is None:
            return fused
        with self._lock:
            return self._smoother.finish(fused, y, ir, self._motion)
