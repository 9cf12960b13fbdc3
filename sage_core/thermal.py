"""Normalisation of raw thermal images (16-bit counts, float temperatures) to [0, 1].

Radiometric cameras publish raw counts that fill a small part of the 16-bit
range, or temperatures as floats; fusion needs [0, 1]. Three methods:

- ``percentile``: automatic gain control between the low and high percentiles
  (robust to a few hot or dead pixels);
- ``minmax``: between the frame's minimum and maximum;
- ``fixed``: between two fixed values (a known scene temperature range).

The automatic ranges are smoothed over time (exponential moving average), so
the picture does not flicker when a hot object enters or leaves the view. One
bad frame (all zero, saturated, a burst of absurd values) must not ruin the
picture for seconds, so a frame whose range is implausible next to the smoothed
one (span more than ``outlier_ratio`` times larger or smaller, centre further
than that many spans away, or not finite) is an outlier: it is normalised with
the current range and does not move it. A genuine change of scene (a lens cap
removed, a flat-field correction) is adopted after ``outlier_frames`` outliers
in a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sage_core.errors import ConfigError, FusionInputError

METHODS = ("percentile", "minmax", "fixed")
#: Percentiles are estimated on every n-th pixel in each direction: ~16x fewer pixels, same range.
_PERCENTILE_STRIDE = 4
#: Spans below this are degenerate (a constant frame): they never become the smoothed range.
_MIN_SPAN = 1e-6


@dataclass
class ThermalNormalizerConfig:
    method: str = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    fixed_min: float = 0.0
    fixed_max: float = 65535.0
    smoothing: float = 0.8  # weight of the previous range in [0, 1); 0 = no smoothing, no outlier rejection
    outlier_ratio: float = 4.0  # see the module docstring
    outlier_frames: int = 5

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"thermal normalisation method {self.method!r}; expected one of {', '.join(METHODS)}")
        numbers = (self.low_percentile, self.high_percentile, self.fixed_min, self.fixed_max, self.smoothing,
                   self.outlier_ratio)
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
        if self.outlier_ratio <= 1.0 or self.outlier_frames < 1:
            raise ConfigError(f"thermal outlier_ratio must be > 1 and outlier_frames >= 1, got "
                              f"{self.outlier_ratio}, {self.outlier_frames}")


class ThermalNormalizer:
    """Maps raw thermal frames to float32 [0, 1], keeping a smoothed range between frames."""

    def __init__(self, config: ThermalNormalizerConfig | None = None) -> None:
        self.config = config or ThermalNormalizerConfig()
        self.config.validate()
        self._range: tuple[float, float] | None = None
        self._outlier_streak = 0
        self.outliers = 0  # frames whose range was rejected, since start

    def reconfigure(self, config: ThermalNormalizerConfig) -> None:
        """Apply new settings (validated first) and forget the smoothed range."""
        config.validate()
        self.config = config
        self._range = None
        self._outlier_streak = 0

    @property
    def current_range(self) -> tuple[float, float] | None:
        return self._range

    def _measure(self, raw: np.ndarray) -> tuple[float, float]:
        cfg = self.config
        if cfg.method == "fixed":
            return cfg.fixed_min, cfg.fixed_max
        if cfg.method == "minmax":
            return float(raw.min()), float(raw.max())
        sample = raw[::_PERCENTILE_STRIDE, ::_PERCENTILE_STRIDE]
        if sample.dtype in (np.uint8, np.uint16):
            return _integer_percentiles(sample, cfg.low_percentile, cfg.high_percentile)
        lo, hi = np.percentile(sample, (cfg.low_percentile, cfg.high_percentile))
        return float(lo), float(hi)

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
        if cfg.method == "fixed" or cfg.smoothing == 0:
            self._range = (lo, hi)
            return lo, hi
        if self._is_outlier(lo, hi):
            self.outliers += 1
            self._outlier_streak += 1
            adopt = (self._outlier_streak >= cfg.outlier_frames and math.isfinite(lo) and math.isfinite(hi)
                     and hi - lo >= _MIN_SPAN)
            if not adopt:
                return self._range if self._range is not None else (lo, hi)
            self._range = None  # a genuine change of scene: start smoothing afresh from this frame
        self._outlier_streak = 0
        if self._range is not None:
            a = cfg.smoothing
            lo, hi = a * self._range[0] + (1 - a) * lo, a * self._range[1] + (1 - a) * hi
        self._range = (lo, hi)
        return lo, hi

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Raw H x W thermal (any numeric type) -> float32 H x W in [0, 1]."""
        if raw.ndim != 2 or raw.size == 0:
            raise FusionInputError(f"thermal frame must be a non-empty H x W array, got shape {raw.shape}")
        lo, hi = self._update_range(*self._measure(raw))
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
