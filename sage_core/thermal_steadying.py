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
- a step that moves some grey level by ``curve_from`` (4) levels or more is then measured as a curve, not a
  line: a camera's gain control changes its tone curve, which saturates at the top (on the plaza the step is
  +8 grey levels at 100, +19 at 140, +28 at 180 and +18 at 220, where a line leaves 2.6 grey levels of RMS
  residual against the curve's 2.0, on the whole-resolution frames aligned by the thermal's own flow): the
  median of the current frame's points in 16-level bins of the previous one's, made monotone, continued past
  the data with the line's slope. Smaller steps stay lines (a curve fitted to them follows the noise);
- the correction (a curve over the 256 grey levels, the identity at start) is composed with the inverse of
  each fitted change, so the output continues the previous frame's tone, and then relaxed towards the
  identity by ``strength`` per frame: a step of the camera becomes a ramp of a few frames (0.9: a tenth of
  the step at once, half of it within 7 frames), a lasting change of the camera's tone is adopted within
  about a second;
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
#: A step is measured as a curve by the median of the current points in bins of this many grey levels of the
#: previous frame, a bin used from this many points on.
_BIN, _BIN_POINTS = 16.0, 8
_LEVELS = np.arange(256, dtype=np.float64)


@dataclass(frozen=True)
class SteadyingConfig:
    """``strength``: weight of the correction kept per frame, in [0, 1); 0 turns the steadying off.
    ``curve_from``: a step moving some grey level by this much is measured as a curve (``math.inf``: always a
    line, the steadier before issue 31's curve; a benchmark's comparison, not a node parameter)."""

    strength: float = 0.9
    curve_from: float = 4.0

    def validate(self) -> None:
        if not (isinstance(self.strength, (int, float)) and math.isfinite(self.strength)
                and 0.0 <= self.strength < 1.0):
            raise ConfigError(f"thermal steadying strength must be a number in [0, 1), got {self.strength!r}")
        if not (isinstance(self.curve_from, (int, float)) and self.curve_from > 0.0):
            raise ConfigError(f"thermal steadying curve_from must be a number > 0 (grey levels), got "
                              f"{self.curve_from!r}")


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


def fit_curve(previous: np.ndarray, current: np.ndarray, g: float, o: float) -> np.ndarray:
    """The change as a monotone curve over the 256 grey levels: the median of ``current`` in bins of ``previous``
    (points at the ends of the range left out, as in :func:`fit_change`), linear between the bins' medians and
    continued past them with the fitted line's slope ``g``; the line ``g v + o`` where fewer than two bins hold
    enough points."""
    x, y = previous.ravel().astype(np.float64), current.ravel().astype(np.float64)
    usable = (np.minimum(x, y) > _CLIP_MARGIN) & (np.maximum(x, y) < 255.0 - _CLIP_MARGIN)
    x, y = x[usable], y[usable]
    bins = np.floor(x / _BIN).astype(np.int64)
    knots = [(float(np.median(x[bins == k])), float(np.median(y[bins == k])))
             for k in np.unique(bins) if int(np.count_nonzero(bins == k)) >= _BIN_POINTS]
    if len(knots) < 2:
        return g * _LEVELS + o
    knot_x, knot_y = (np.array(values) for values in zip(*knots))
    return _extend(np.maximum.accumulate(knot_x), np.maximum.accumulate(knot_y), _LEVELS, g)


def _extend(knot_x: np.ndarray, knot_y: np.ndarray, at: np.ndarray, slope: float,
            top_slope: float | None = None) -> np.ndarray:
    """The piecewise-linear function through the knots at ``at``, continued past its ends with ``slope`` (past its
    top with ``top_slope`` when given)."""
    values = np.interp(at, knot_x, knot_y)
    values = np.where(at < knot_x[0], knot_y[0] + slope * (at - knot_x[0]), values)
    top = slope if top_slope is None else top_slope
    return np.where(at > knot_x[-1], knot_y[-1] + top * (at - knot_x[-1]), values)


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
    def correction(self) -> np.ndarray:
        """The grey level (float, 0..255) each of the 256 input levels is shown as; the identity when steady."""
        return self._curve.copy()

    def reset(self) -> None:
        self._previous: np.ndarray | None = None
        self._curve = _LEVELS.copy()

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
                self._follow(g, o, previous, pooled)
        else:
            self._curve = _LEVELS.copy()
        self._curve = _LEVELS + self.config.strength * (self._curve - _LEVELS)
        if float(np.abs(self._curve - _LEVELS).max()) <= _IDENTITY:
            self._curve = _LEVELS.copy()
            return frame
        table = (np.clip(self._curve, 0.0, 255.0) / 255.0).astype(np.float32).reshape(1, 256)
        return _cv2().LUT(frame, table)

    def _follow(self, g: float, o: float, previous: np.ndarray, current: np.ndarray) -> None:
        """Compose the correction with the inverse of the fitted change: the output continues the last frame's."""
        low, high = np.percentile(previous, (2, 98))
        move = _largest_move(g, o, float(low), float(high))  # over the grey levels the picture uses
        if move < _STEP:
            return
        self.steps += 1
        change = fit_curve(previous, current, g, o) if move >= self.config.curve_from else g * _LEVELS + o
        change = np.maximum.accumulate(change + 1e-6 * _LEVELS)  # strictly increasing: invertible
        inverse = _extend(change, _LEVELS, _LEVELS, 1.0 / g)  # the level before the change, for each after it
        curve = self._curve
        self._curve = _extend(_LEVELS, curve, inverse, float(curve[1] - curve[0]), float(curve[-1] - curve[-2]))


def _largest_move(gain: float, offset: float, low: float = 0.0, high: float = 255.0) -> float:
    """The most ``v -> gain v + offset`` moves a grey level v in [low, high]."""
    return max(abs(offset + low * (gain - 1.0)), abs(offset + high * (gain - 1.0)))


def _pool(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape
    size = (max(1, width // _POOL), max(1, height // _POOL))
    return _cv2().resize(frame.astype(np.float32), size, interpolation=_cv2().INTER_AREA)


def _cv2():
    """OpenCV, on first use: the node's parameter table imports this module's config, and loads no OpenCV."""
    import cv2

    return cv2
