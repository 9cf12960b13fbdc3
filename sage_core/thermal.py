"""Normalisation of raw thermal images (8/16-bit counts, float temperatures) to [0, 1].

An 8-bit stream is already tone-mapped by its camera and keeps its tone: the pipeline passes it through
:meth:`ThermalNormalizer.steady`, which only damps its camera's gain steps (``steadying``;
:mod:`sage_core.thermal_steadying`). What follows is for raw streams (16-bit counts, float temperatures).

Radiometric cameras publish raw counts that fill a small part of the 16-bit
range, or temperatures as floats; fusion needs [0, 1]. Four methods:

- ``plateau``: plateau histogram equalisation, the automatic gain control thermal
  cameras ship (:mod:`sage_core.tone_mapping`): a hot object entering the view
  takes only the grey levels its own values need, so the rest of the picture
  keeps its brightness and contrast;
- ``percentile``: a linear stretch between the low and high percentiles
  (robust to a few hot or dead pixels, but the picture pumps when a hot object
  enters: everything else is squeezed into a few grey levels);
- ``minmax``: between the frame's minimum and maximum;
- ``fixed``: between two fixed values (a known scene temperature range).

The automatic ranges (and the plateau method's curve) are smoothed over time
(exponential moving average), so the picture does not flicker. One
bad frame (all zero, saturated, a burst of absurd values) must not ruin the
picture for seconds, so a frame whose range is implausible next to the smoothed
one (span more than ``outlier_ratio`` times larger or smaller, centre further
than that many spans away, or not finite) is an outlier: it is normalised with
the current range and does not move it. A genuine change of scene (a lens cap
removed, a flat-field correction) is adopted after ``outlier_frames`` outliers
in a row.

A thermal camera freezes its output during a flat-field correction (the same
frame again for 0.2-0.5 s) and then jumps, often with a new sensor offset. A
frame that repeats the previous one (``repeated``, or detected when
``detect_repeats``: a regular sample of its pixels equals the previous frame's)
is mapped with the current state and does not move it; the first frame after
a freeze is compared with the frozen one, and their median difference is taken
as a sensor offset that the state follows at once, rather than as a change of
scene that the smoothing would take seconds to absorb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sage_core import tone_mapping
from sage_core.errors import ConfigError, FusionInputError
from sage_core.thermal_steadying import SteadyingConfig, ThermalSteadier

METHODS = ("percentile", "minmax", "fixed", "plateau")
#: Percentiles are estimated on every n-th pixel in each direction: ~16x fewer pixels, same range.
_PERCENTILE_STRIDE = 4
#: Spans below this are degenerate (a constant frame): they never become the smoothed range.
_MIN_SPAN = 1e-6


@dataclass
class ThermalNormalizerConfig:
    method: str = "plateau"  # raw streams get what thermal cameras ship: no pumping (docs/temporal.md)
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    fixed_min: float = 0.0
    fixed_max: float = 65535.0
    smoothing: float = 0.8  # weight of the previous range in [0, 1); 0 = no smoothing, no outlier rejection
    outlier_ratio: float = 4.0  # see the module docstring
    outlier_frames: int = 5
    plateau_level: float = 3.0  # plateau method: bin cap, times the mean count of the occupied bins
    plateau_tail: float = 0.1  # plateau method: percent of pixels at each end mapped to black / white
    plateau_linear: float = 0.15  # plateau method: share of a linear stretch in the curve (keeps temperature gaps)
    detect_repeats: bool = True  # a frame equal to the previous one (a camera freeze) does not move the state
    steadying: float = 0.9  # 8-bit streams: weight of the gain-step correction kept per frame (0: off)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"thermal normalisation method {self.method!r}; expected one of {', '.join(METHODS)}")
        numbers = (self.low_percentile, self.high_percentile, self.fixed_min, self.fixed_max, self.smoothing,
                   self.outlier_ratio, self.plateau_level, self.plateau_tail, self.plateau_linear)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise ConfigError(f"thermal normalisation settings must be finite numbers, got {numbers}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ConfigError(
                f"thermal percentiles must satisfy 0 <= low < high <= 100, got {self.low_percentile}, "
                f"{self.high_percentile}")
        if not self.fixed_min < self.fixed_max:
            raise ConfigError(f"thermal fixed range must have min < max, got [{self.fixed_min}, {self.fixed_max}]")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"thermal range smoothing must lie in [0, 1), got {self.smoothing}")
        if not (self.plateau_level > 0.0 and 0.0 <= self.plateau_tail < 50.0):
            raise ConfigError(f"thermal plateau_level must be > 0 and plateau_tail in [0, 50), got "
                              f"{self.plateau_level}, {self.plateau_tail}")
        if not 0.0 <= self.plateau_linear <= 1.0:
            raise ConfigError(f"thermal plateau_linear must lie in [0, 1], got {self.plateau_linear}")
        SteadyingConfig(self.steadying).validate()
        if self.outlier_ratio <= 1.0 or self.outlier_frames < 1:
            raise ConfigError(f"thermal outlier_ratio must be > 1 and outlier_frames >= 1, got "
                              f"{self.outlier_ratio}, {self.outlier_frames}")


class ThermalNormalizer:
    """Maps raw thermal frames to float32 [0, 1], keeping a smoothed range (or curve) between frames."""

    def __init__(self, config: ThermalNormalizerConfig | None = None) -> None:
        self.config = config or ThermalNormalizerConfig()
        self.config.validate()
        self.outliers = 0  # frames whose range was rejected, since start
        self.repeats = 0  # frames that repeated the previous one (camera freezes), since start
        self.steadier = ThermalSteadier(SteadyingConfig(self.config.steadying))
        self._reset()

    def _reset(self) -> None:
        self._range: tuple[float, float] | None = None
        self._curve: tone_mapping.ToneCurve | None = None
        self._outlier_streak = 0
        self._rejected = False  # whether the last frame's range was an outlier
        self._probe: np.ndarray | None = None  # a copy of a sample of the last new frame, to recognise repeats
        self._last: np.ndarray | None = None  # the last new frame itself (a reference, not a copy)
        self._frozen = False  # the frames since the last new one were repeats

    def reconfigure(self, config: ThermalNormalizerConfig) -> None:
        """Apply new settings (validated first) and forget the smoothed range."""
        config.validate()
        self.config = config
        self.steadier.reconfigure(SteadyingConfig(config.steadying))
        self._reset()

    def steady(self, frame: np.ndarray) -> np.ndarray:
        """An 8-bit H x W frame, tone-mapped by its camera: kept as it is, but for its camera's gain steps, which
        are damped (uint8 as given, or float32 [0, 1] while a step is absorbed; thermal_steadying.py)."""
        return self.steadier(frame)

    @property
    def current_range(self) -> tuple[float, float] | None:
        return self._range

    @property
    def current_curve(self) -> tone_mapping.ToneCurve | None:
        """The plateau method's smoothed curve (None for the other methods, or before the first frame)."""
        return self._curve

    def _measure(self, raw: np.ndarray) -> tuple[float, float]:
        cfg = self.config
        if cfg.method == "fixed":
            return cfg.fixed_min, cfg.fixed_max
        if cfg.method == "minmax":
            return float(raw.min()), float(raw.max())
        if cfg.method == "plateau":
            return _percentiles(tone_mapping.histogram_sample(raw), cfg.plateau_tail, 100.0 - cfg.plateau_tail)
        return _percentiles(raw[::_PERCENTILE_STRIDE, ::_PERCENTILE_STRIDE], cfg.low_percentile,
                            cfg.high_percentile)

    def _is_outlier(self, lo: float, hi: float) -> bool:
        """Whether a frame's range is implausible next to the smoothed range (see the module docstring)."""
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return True
        if self._range is None:
            return hi - lo < _MIN_SPAN
        ratio = self.config.outlier_ratio
        span, previous = hi - lo, max(self._range[1] - self._range[0], _MIN_SPAN)
        centre_shift = abs((lo + hi) - (self._range[0] + self._range[1])) / 2
        return span * ratio < previous or span > previous * ratio or centre_shift > ratio * previous

    def _update_range(self, lo: float, hi: float) -> tuple[float, float]:
        """The range to normalise this frame with; updates the smoothed range unless the frame is an outlier."""
        cfg = self.config
        self._rejected = False
        if cfg.method == "fixed" or cfg.smoothing == 0:
            self._range = (lo, hi)
            return lo, hi
        if self._is_outlier(lo, hi):
            self.outliers += 1
            self._outlier_streak += 1
            adopt = (self._outlier_streak >= cfg.outlier_frames and math.isfinite(lo) and math.isfinite(hi)
                     and hi - lo >= _MIN_SPAN)
            if not adopt:
                self._rejected = True
                return self._range if self._range is not None else (lo, hi)
            self._range = None  # a genuine change of scene: start smoothing afresh from this frame
            self._curve = None
        self._outlier_streak = 0
        if self._range is not None:
            a = cfg.smoothing
            lo, hi = a * self._range[0] + (1 - a) * lo, a * self._range[1] + (1 - a) * hi
        self._range = (lo, hi)
        return lo, hi

    def _is_repeat(self, raw: np.ndarray, probe: np.ndarray) -> bool:
        """Equal to the last new frame: the sample first (cheap, and sensor noise makes it differ), then every
        pixel; a frame written into the last one's buffer cannot be compared and counts as new."""
        previous, last = self._probe, self._last
        if previous is None or last is None or previous.shape != probe.shape or previous.dtype != probe.dtype:
            return False
        if not np.array_equal(previous, probe) or np.shares_memory(raw, last):
            return False
        return last.shape == raw.shape and np.array_equal(last, raw)

    def _follow_offset(self, raw: np.ndarray, probe: np.ndarray) -> None:
        """After a freeze: move the state by the sensor offset between the frozen frame and this one, if this
        frame, moved back by it, is a plausible frame of the same scene."""
        if self._probe is None or self._probe.shape != probe.shape or self._range is None \
                or self.config.method == "fixed":
            return
        offset = float(np.median(np.subtract(probe, self._probe, dtype=np.float64)))
        # An offset as large as the scene's range is no sensor offset but a bad frame or a new scene: the
        # outlier rules judge it.
        if not math.isfinite(offset) or offset == 0.0 or abs(offset) >= self._range[1] - self._range[0]:
            return
        lo, hi = self._measure(raw)
        if self._is_outlier(lo - offset, hi - offset):
            return
        self._range = (self._range[0] + offset, self._range[1] + offset)
        if self._curve is not None:
            self._curve = self._curve.shifted(offset)

    def __call__(self, raw: np.ndarray, repeated: bool | None = None) -> np.ndarray:
        """Raw H x W thermal (any numeric type) -> float32 H x W in [0, 1].

        ``repeated``: whether this frame repeats the previous one (a camera freeze); None detects it when the
        configuration says ``detect_repeats``. A repeat is mapped with the current state and leaves it as is.
        """
        if raw.ndim != 2 or raw.size == 0:
            raise FusionInputError(f"thermal frame must be a non-empty H x W array, got shape {raw.shape}")
        probe = raw[::_PERCENTILE_STRIDE, ::_PERCENTILE_STRIDE]
        if repeated is None:
            repeated = self.config.detect_repeats and self._is_repeat(raw, probe)
        if repeated and (self._range is not None or self._curve is not None):
            self.repeats += 1
            self._frozen = True
            if self._curve is not None:
                return tone_mapping.apply_curve(raw, self._curve)
            return _stretch(raw, *self._range)
        if self._frozen:
            self._follow_offset(raw, probe)
            self._frozen = False
        self._probe, self._last = np.array(probe), raw  # the sample copied: callers may reuse the buffer
        if self.config.method == "plateau":
            return self._equalise(raw)
        return _stretch(raw, *self._update_range(*self._measure(raw)))

    def _equalise(self, raw: np.ndarray) -> np.ndarray:
        """The plateau method: a new curve from this frame, blended with the smoothed one (see tone_mapping)."""
        cfg = self.config
        lo, hi = self._measure(raw)
        self._update_range(lo, hi)  # the outlier rules, on the range without the tails
        if self._rejected:
            if self._curve is not None:
                return tone_mapping.apply_curve(raw, self._curve)
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise FusionInputError(f"thermal frame has no finite range (measured [{lo}, {hi}])")
            return tone_mapping.apply_curve(raw, tone_mapping.flat_curve(lo))  # constant first frame
        if not (math.isfinite(lo) and math.isfinite(hi)):  # no smoothing, so no outlier rules to catch it
            raise FusionInputError(f"thermal frame has no finite range (measured [{lo}, {hi}])")
        curve = tone_mapping.plateau_curve(tone_mapping.histogram_sample(raw), lo, hi, cfg.plateau_level,
                                           cfg.plateau_linear)
        if self._curve is not None and cfg.smoothing > 0:
            curve = tone_mapping.blend(self._curve, curve, cfg.smoothing)
        self._curve = curve
        return tone_mapping.apply_curve(raw, curve)


def _percentiles(sample: np.ndarray, low: float, high: float) -> tuple[float, float]:
    if sample.dtype in (np.uint8, np.uint16):
        return _integer_percentiles(sample, low, high)
    lo, hi = np.percentile(sample, (low, high))
    return float(lo), float(hi)


def _stretch(raw: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The linear methods: [lo, hi] -> [0, 1], clipped."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise FusionInputError(f"thermal frame has no finite range (measured [{lo}, {hi}])")
    span = max(hi - lo, _MIN_SPAN)
    out = np.subtract(raw, np.float32(lo), dtype=np.float32)  # converts as it subtracts: one pass less
    out *= np.float32(1.0 / span)
    return np.clip(out, 0.0, 1.0, out=out)


def _integer_percentiles(sample: np.ndarray, *percentiles: float) -> tuple[float, ...]:
    """``np.percentile(sample, percentiles)`` (linear interpolation) for 8/16-bit samples, from a histogram: the
    k-th smallest value is where the cumulative count passes k: one counting pass instead of a sort, the same
    values."""
    cumulative = np.cumsum(np.bincount(sample.ravel()))
    count = int(cumulative[-1])
    results = []
    for q in percentiles:
        position = (count - 1) * q / 100.0
        below = int(np.floor(position))
        low, high = np.searchsorted(cumulative, (below, min(below + 1, count - 1)), side="right")
        results.append(float(low + (position - below) * (float(high) - float(low))))
    return tuple(results)
