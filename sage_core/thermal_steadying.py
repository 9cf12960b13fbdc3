"""Steadying an 8-bit thermal stream's own gain steps: what a camera-tone-mapped stream needs (docs/temporal.md).

An 8-bit thermal stream is already tone-mapped by its camera, so the pipeline keeps its tone (no second
equalisation). But the camera's automatic gain control changes that tone in steps: on the M3SVD plaza clip
(1230_1202) the whole picture jumps by a gain of about 1.14 four times in 60 frames (about 20 grey levels on
its bright wall), and those four frame pairs carry 58 % of the fused stream's two-source flow error: the
fusion model passes the step on where it shows the thermal and, its decisions reacting to the new level,
amplifies it (benchmarks/bench_temporal_parts.py). :class:`ThermalSteadier` undoes such steps and lets the
camera's tone back in slowly:

- each frame is compared with the previous one at 1/8 resolution (an area average: small motion and noise
  average out); the global affine change ``T_t = g T_(t-1) + o`` is fitted by the ratio of the two frames'
  spreads (a moving camera does not bias it, as it would a least-squares slope), refitted twice on the pixels
  within three robust standard deviations of the fit (a moving or entering object is left out), without the
  pixels at the ends of the range (clipped, so not affine); a change that moves no grey level by a whole
  level is the camera's own drift, let through;
- a fit that explains less than half of the picture (a fast pan, a new scene) changes nothing;
- the correction ``G T + O`` (identity at start) is composed with the inverse of each fitted change, so the
  output continues the previous frame's tone, and then relaxed towards the identity by ``strength`` per
  frame: a step of the camera becomes a ramp of a few frames (0.9: a tenth of the step at once, half of it
  within 7 frames), a lasting change of the camera's tone is adopted within about a second;
- while the correction moves no grey level by more than a quarter (the camera's own tone), the frame is
  returned as it is: a steady camera gives the same picture, bit for bit, as without this step.

Causal, one frame of state (:meth:`reset` forgets it). Not for raw 16-bit or float streams, which the
normaliser tone-maps itself (sage_core/thermal.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sage_core.errors import ConfigError

#: Pooling factor of the comparison: 80 x 64 points at 640 x 512.
_POOL = 8
#: Pooled values this close to 0 or 255 are clipped somewhere in their block: left out of the fit.
_CLIP_MARGIN = 2.0
#: Fewest pooled points (and least share of them) a fit must explain to be believed.
_MIN_POINTS, _MIN_INLIERS = 32, 0.5
#: A correction that moves no grey level by more than this is the identity.
_IDENTITY = 0.25
#: A fitted change that moves no grey level by this much is the camera's own drift (or the fit's noise): let
#: through, so that the correction does not wander with the noise of the fit.
_STEP = 1.0


@dataclass(frozen=True)
class SteadyingConfig:
    """``strength``: weight of the correction kept per frame, in [0, 1); 0 turns the steadying off."""

    strength: float = 0.9

    def validate(self) -> None:
        if not (isinstance(self.strength, (int, float)) and math.isfinite(self.strength)
                and 0.0 <= self.strength < 1.0):
            raise ConfigError(f"thermal steadying strength must be a number in [0, 1), got {self.strength!r}")


def fit_change(previous: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """``(g, o, inliers)``: ``current ~ g previous + o`` over the pooled points (robust), and the share of the
    usable points within three robust standard deviations of it."""
    x, y = previous.ravel().astype(np.float64), current.ravel().astype(np.float64)
    usable = (np.minimum(x, y) > _CLIP_MARGIN) & (np.maximum(x, y) < 255.0 - _CLIP_MARGIN)
    if int(usable.sum()) < _MIN_POINTS:
        return 1.0, 0.0, 0.0
    keep = usable
    g, o = 1.0, 0.0
    for _ in range(3):
        if int(keep.sum()) < _MIN_POINTS:
            return 1.0, 0.0, 0.0
        g, o = _line(x[keep], y[keep])
        residual = np.abs(y - (g * x + o))
        # 1.4826 MAD: a robust standard deviation; the floor keeps a noiseless fit from trimming everything.
        scale = 1.4826 * float(np.median(residual[keep])) + 0.25
        keep = usable & (residual < 3.0 * scale)
    return g, o, float(keep.sum()) / float(usable.sum())


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The line through the points by their spreads (reduced major axis), not least squares: a camera that moves
    (a pan, a shake) makes the frames differ pixel by pixel, which pulls a least-squares slope below 1 and would
    look like a gain step; the ratio of the spreads stays 1 when only the content moves."""
    spread_x, spread_y = float(x.std()), float(y.std())
    if spread_x < 1e-3 or np.mean((x - x.mean()) * (y - y.mean())) <= 0:  # flat, or no relation: an offset only
        return 1.0, float(np.median(y - x))
    g = spread_y / spread_x
    return g, float(y.mean() - g * x.mean())


class ThermalSteadier:
    """``steadier(frame) -> frame``: an 8-bit H x W thermal frame, returned as it is or, while a gain step is
    being absorbed, as float32 in [0, 1]; see the module docstring."""

    def __init__(self, config: SteadyingConfig | None = None) -> None:
        self.config = config or SteadyingConfig()
        self.config.validate()
        self.steps = 0  # fitted changes acted on, since start
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.config.strength > 0.0

    @property
    def correction(self) -> tuple[float, float]:
        """``(G, O)``: the frame is shown as ``G T + O`` (grey levels)."""
        return self._gain, self._offset

    def reset(self) -> None:
        self._previous: np.ndarray | None = None
        self._gain, self._offset = 1.0, 0.0

    def reconfigure(self, config: SteadyingConfig) -> None:
        config.validate()
        self.config = config
        self.reset()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.uint8 or frame.ndim != 2:
            raise ConfigError(f"thermal steadying takes 8-bit H x W frames, got {frame.dtype} {frame.shape}")
        if not self.enabled:
            return frame
        pooled = _pool(frame)
        previous, self._previous = self._previous, pooled
        if previous is not None and previous.shape == pooled.shape:
            g, o, inliers = fit_change(previous, pooled)
            if inliers >= _MIN_INLIERS and 0.5 <= g <= 2.0:
                self._follow(g, o, previous)
        else:
            self._gain, self._offset = 1.0, 0.0
        strength = self.config.strength
        self._gain = 1.0 + strength * (self._gain - 1.0)
        self._offset *= strength
        if _largest_move(self._gain, self._offset) <= _IDENTITY:
            self._gain, self._offset = 1.0, 0.0
            return frame
        out = frame.astype(np.float32)
        out *= np.float32(self._gain / 255.0)
        out += np.float32(self._offset / 255.0)
        return np.clip(out, 0.0, 1.0, out=out)

    def _follow(self, g: float, o: float, previous: np.ndarray) -> None:
        """Compose the correction with the inverse of ``T -> g T + o``: the output continues the last frame's."""
        low, high = np.percentile(previous, (2, 98))
        if _largest_move(g, o, float(low), float(high)) < _STEP:  # over the grey levels the picture uses
            return
        self.steps += 1
        self._offset -= self._gain * o / g
        self._gain /= g


def _largest_move(gain: float, offset: float, low: float = 0.0, high: float = 255.0) -> float:
    """The most ``v -> gain v + offset`` moves a grey level v in [low, high]."""
    return max(abs(offset + low * (gain - 1.0)), abs(offset + high * (gain - 1.0)))


def _pool(frame: np.ndarray) -> np.ndarray:
    import cv2  # on first use: the node's parameter table imports this module's config, and loads no OpenCV

    height, width = frame.shape
    size = (max(1, width // _POOL), max(1, height // _POOL))
    return cv2.resize(frame.astype(np.float32), size, interpolation=cv2.INTER_AREA)
