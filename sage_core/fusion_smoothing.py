"""Temporal treatment of an affine fusion model's coefficients, for a steadier fused video (docs/temporal.md).

AffineFuse decides per 4 x 4 block how much of each camera to show (``F = a Y + b ir + c``, the
coefficients at 1/4 resolution). Frame to frame, those decisions jitter with sensor and compression noise,
and the jitter modulates the full-resolution detail of both cameras: on the M3SVD clips it is a large share
of the fused stream's warping error. :class:`CoefficientSmoother` keeps an exponential moving average of
the coefficient maps that follows the scene:

- motion-compensated: the previous average is warped along the optical flow of the pooled visible
  luminance (DIS, ultrafast, on the 1/4-resolution grid: about 2 ms at 640x480 with the remaps), so a moving
  object's coefficients move with it instead of leaving a trail;
- bounded: the average may hold the (low-resolution) fused picture at most ``max_change`` away from what
  this frame's coefficients give; a larger change (a moving object the flow missed, a thermal-only object, a
  new decision) takes the average along with it at once, so nothing trails behind by more than that, while
  jitter smaller than it is averaged with the full ``strength``;
- a gain limit on the rule's total gain ``a + b`` (``motion_gain_limit`` where the picture moves,
  ``still_gain_limit`` where it does not; 1.0 and 1.0 in the node): ``a + b`` is brought down to the limit, each
  block's mean kept (``c`` takes what ``a`` and ``b`` gave it), so the fused detail changes by no more than the
  larger of the two cameras' changes (for ``a, b >= 0`` and ``a + b <= 1``, ``|a dY + b dT| <= max(|dY|, |dT|)``).
  The model adds both cameras at ``a + b`` of about 1.4, which adds both cameras' changes: where both move
  (people walking in front of a wall both cameras see), and where nothing moves, both cameras' temporal noise
  (on a calm scene that noise is all that changes; issue 31: the plaza clip's calm part). A block moves when
  either pooled camera, after warping, changed there by more than 1 % of the grey range, fully from 3 %, counted
  over its 5 x 5 neighbourhood (the reach of the coefficients' upsampling and of the decisions around a moving
  object); the two limits are blended by that. A frame with no motion known (a stream's first, the first after a
  scene cut) counts as still everywhere, so a stream does not start with one frame at the model's gain; a single
  image (no stream, no smoothing) is fused by the model's own rule;
- with ``change_cap`` above 0 (0.02 in the node), the motion measured here also serves the change cap
  (sage_core/change_cap.py), which the pipeline runs on the full-resolution fused frame (:meth:`finish`): no
  pixel changes between frames by more than the larger of its two cameras' changes, plus one grey level;
- reset on a scene cut (either pooled camera, after warping, changes by more than ``scene_cut`` on
  average: a jump after a flat-field correction, a cut in a recording) and on a change of frame size;
- no rule for repeated frames (a camera freeze): a repeated pair gives the same coefficients again, which the
  average converges to; the jump after the freeze is a scene cut or a gated change like any other.

Causal, one frame of state, no look-ahead: what a live node can run. Thread-safety is the caller's
(``FramePipeline`` holds its lock around it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sage_core.change_cap import ChangeCap
from sage_core.errors import ConfigError

#: Below this many pooled pixels on a side the flow is not worth computing (tiny test frames): zero motion.
_MIN_FLOW_SIDE = 16
_NEIGHBOURS = np.ones((3, 3), np.uint8)
#: A block moves from this change of a pooled camera (0..1) on, fully from the second, over this neighbourhood.
_MOTION_FROM, _MOTION_FULL = 0.01, 0.03
_MOTION_REACH = np.ones((5, 5), np.uint8)


@dataclass(frozen=True)
class SmoothingConfig:
    """``strength``: weight of the previous (warped) coefficients in [0, 1); 0 turns the averaging off.
    ``motion_gain_limit``, ``still_gain_limit``: the most ``a + b`` where the picture moves and where it does not (0:
    no limit there). ``change_cap``: the most the change cap may hold the full-resolution fused picture (0..1) from
    the model's own (0: no cap)."""

    strength: float = 0.0
    max_change: float = 0.01  # most the smoothing holds the low-resolution fused picture (0..1) from this frame's
    scene_cut: float = 0.1  # mean change of a pooled camera (0..1) taken as a new scene
    motion_gain_limit: float = 0.0
    change_cap: float = 0.0
    still_gain_limit: float = 0.0

    @property
    def limits_gain(self) -> bool:
        return self.motion_gain_limit > 0.0 or self.still_gain_limit > 0.0

    def validate(self) -> None:
        values = (self.strength, self.max_change, self.scene_cut, self.motion_gain_limit, self.change_cap,
                  self.still_gain_limit)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ConfigError(f"fusion smoothing settings must be finite numbers, got {values}")
        if not 0.0 <= self.strength < 1.0:
            raise ConfigError(f"fusion smoothing strength must lie in [0, 1), got {self.strength}")
        if self.max_change <= 0.0 or self.scene_cut <= 0.0:
            raise ConfigError(f"fusion smoothing max_change and scene_cut must be > 0, got {self.max_change}, "
                              f"{self.scene_cut}")
        if self.motion_gain_limit < 0.0 or self.still_gain_limit < 0.0:
            raise ConfigError(f"fusion gain limits must be >= 0 (0: none), got {self.motion_gain_limit} where the "
                              f"picture moves, {self.still_gain_limit} where it does not")
        if not 0.0 <= self.change_cap <= 1.0:
            raise ConfigError(f"fusion change cap must lie in [0, 1] (0: none), got {self.change_cap}")


class CoefficientSmoother:
    """``smoother(low, pooled) -> low``: ``low`` (3, h, w) coefficients, ``pooled`` (2, h, w) pooled (Y, ir)."""

    def __init__(self, config: SmoothingConfig | None = None) -> None:
        self.config = config or SmoothingConfig()
        self.config.validate()
        self.resets = 0  # scene cuts seen, since start
        self._flow = None  # created on first use, with OpenCV (see _cv2)
        self.cap = ChangeCap(self.config.change_cap)
        self.frames = 0  # frames seen, since start: their order, for the change cap
        #: The last frame's number and its motion to the frame before ((h, w, 2) pooled pixels; None: no previous
        #: frame or a new scene), for :meth:`finish`.
        self.motion: tuple[int, np.ndarray | None] = (0, None)
        self.reset()

    @property
    def enabled(self) -> bool:
        config = self.config
        return config.strength > 0.0 or config.limits_gain or config.change_cap > 0.0

    def reset(self) -> None:
        """Forget the average (the next frame's coefficients are used as they are) and the change cap's state."""
        self._low: np.ndarray | None = None
        self._pooled: np.ndarray | None = None
        self.cap.reset()

    def reconfigure(self, config: SmoothingConfig) -> None:
        config.validate()
        self.config = config
        self.cap = ChangeCap(config.change_cap)
        self.reset()

    def finish(self, fused: np.ndarray, y: np.ndarray, ir: np.ndarray, motion: tuple[int, np.ndarray | None]
               ) -> np.ndarray:
        """The change cap on one full-resolution fused frame, with the ``motion`` this smoother gave that frame."""
        return self.cap(fused, y, ir, *motion)

    def __call__(self, low: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return low
        self.frames += 1
        self.motion = (self.frames, None)
        previous, previous_pooled = self._low, self._pooled
        if previous is None or previous_pooled is None or previous.shape != low.shape:
            return self._keep(self._limit_still(low, pooled), pooled)
        warp, flow = self._warper(pooled[0], previous_pooled[0])
        previous = np.stack([warp(plane) for plane in previous])
        moved = np.stack([warp(plane) for plane in previous_pooled])
        if float(np.abs(pooled - moved).mean(axis=(1, 2)).max()) > self.config.scene_cut:
            self.resets += 1
            return self._keep(self._limit_still(low, pooled), pooled)
        self.motion = (self.frames, flow)
        if self.config.limits_gain:
            low = self._limit_gain(low, pooled, moved)
        if not self.config.strength:
            return self._keep(low, pooled)
        change = low - previous
        # What the new coefficients change in the picture (not the coefficients themselves: a, b and c move
        # together and partly cancel), the largest over the block's neighbours: the coefficients are upsampled
        # bilinearly, so a block's change reaches into its neighbours' pixels.
        effect = _cv2().dilate(np.abs(change[0] * pooled[0] + change[1] * pooled[1] + change[2]), _NEIGHBOURS)
        # Held back by at most max_change: weight * effect <= max_change, so a real change (a moving object
        # the flow missed) shows at once but for that much, and jitter smaller than it is averaged away.
        weight = np.minimum(self.config.strength, self.config.max_change / np.maximum(effect, 1e-6))
        return self._keep(low - weight[None] * change, pooled)

    def _limit_still(self, low: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """A frame with no motion known (a stream's first, the first after a scene cut): every block counts as still,
        so the stream does not start (or restart) with one frame at the model's higher gain."""
        return _limited(low, pooled, self.config.still_gain_limit)

    def _limit_gain(self, low: np.ndarray, pooled: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """The gain limits, the moving one blended in by how much each block moves (see the module docstring)."""
        config = self.config
        moving = _limited(low, pooled, config.motion_gain_limit)
        if config.motion_gain_limit == config.still_gain_limit:
            return moving
        still = _limited(low, pooled, config.still_gain_limit)
        motion = _cv2().dilate(np.abs(pooled - moved).max(axis=0), _MOTION_REACH)
        weight = np.clip((motion - _MOTION_FROM) / (_MOTION_FULL - _MOTION_FROM), 0.0, 1.0)
        return still + weight[None] * (moving - still)

    def _keep(self, low: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        self._low, self._pooled = np.array(low, np.float32), np.array(pooled, np.float32)
        return self._low

    def _warper(self, current_y: np.ndarray, previous_y: np.ndarray):
        """A function sampling a previous plane where each current pixel was, and the flow (current -> previous)."""
        h, w = current_y.shape
        if min(h, w) < _MIN_FLOW_SIDE:
            return (lambda plane: plane), np.zeros((h, w, 2), np.float32)
        cv2 = _cv2()
        if self._flow is None:
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        flow = self._flow.calc(_to_uint8(current_y), _to_uint8(previous_y), None)
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        return (lambda plane: cv2.remap(np.ascontiguousarray(plane, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)), flow


def _limited(low: np.ndarray, pooled: np.ndarray, limit: float) -> np.ndarray:
    """:func:`limit_gain` at ``limit``; 0 is no limit."""
    return limit_gain(low, pooled, limit) if limit else low


def limit_gain(low: np.ndarray, pooled: np.ndarray, limit: float) -> np.ndarray:
    """Coefficients ``(3, h, w)`` with ``a + b`` at most ``limit`` per block: ``a`` and ``b`` scaled down together,
    ``c`` taking what they gave the block's mean (``pooled``: the block means of ``Y`` and ``ir``), so that only the
    amplification of detail changes."""
    a, b, c = low
    factor = np.minimum(1.0, limit / np.maximum(a + b, 1e-6))
    return np.stack([a * factor, b * factor,
                     c + a * (1.0 - factor) * pooled[0] + b * (1.0 - factor) * pooled[1]]).astype(np.float32)


def _cv2():
    """OpenCV, on first use: the node's parameter table validates a SmoothingConfig and loads no OpenCV."""
    import cv2

    return cv2


def _to_uint8(plane: np.ndarray) -> np.ndarray:
    return np.clip(plane * 255.0 + 0.5, 0, 255).astype(np.uint8)
