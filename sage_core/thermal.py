"""Normalisation of raw thermal images (16-bit counts, float temperatures) to [0, 1].

Radiometric cameras publish raw counts that fill a small part of the 16-bit
range, or temperatures as floats; fusion needs [0, 1]. Three methods:

- ``percentile``: automatic gain control between the low and high percentiles
  (robust to a few hot or dead pixels);
- ``minmax``: between the frame's minimum and maximum;
- ``fixed``: between two fixed values (a known scene temperature range).

The automatic ranges are smoothed over time (exponential moving average), so
the picture does not flicker when a hot object enters or leaves the view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sage_core.errors import ConfigError, FusionInputError

METHODS = ("percentile", "minmax", "fixed")
#: Percentiles are estimated on every n-th pixel in each direction: ~16x fewer pixels, same range.
_PERCENTILE_STRIDE = 4


@dataclass
class ThermalNormalizerConfig:
    method: str = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    fixed_min: float = 0.0
    fixed_max: float = 65535.0
    smoothing: float = 0.8  # weight of the previous range in [0, 1); 0 = no smoothing

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"thermal normalisation method {self.method!r}; expected one of {', '.join(METHODS)}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ConfigError(
                f"thermal percentiles must satisfy 0 <= low < high <= 100, got {self.low_percentile}, "
                f"{self.high_percentile}")
        if not self.fixed_min < self.fixed_max:
            raise ConfigError(f"thermal fixed range must have min < max, got [{self.fixed_min}, {self.fixed_max}]")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"thermal range smoothing must lie in [0, 1), got {self.smoothing}")


class ThermalNormalizer:
    """Maps raw thermal frames to float32 [0, 1], keeping a smoothed range between frames."""

    def __init__(self, config: ThermalNormalizerConfig | None = None) -> None:
        self.config = config or ThermalNormalizerConfig()
        self.config.validate()
        self._range: tuple[float, float] | None = None

    def reconfigure(self, config: ThermalNormalizerConfig) -> None:
        """Apply new settings (validated first) and forget the smoothed range."""
        config.validate()
        self.config = config
        self._range = None

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
        lo, hi = np.percentile(sample, (cfg.low_percentile, cfg.high_percentile))
        return float(lo), float(hi)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Raw H x W thermal (any numeric type) -> float32 H x W in [0, 1]."""
        if raw.ndim != 2 or raw.size == 0:
            raise FusionInputError(f"thermal frame must be a non-empty H x W array, got shape {raw.shape}")
        lo, hi = self._measure(raw)
        if self.config.method != "fixed" and self._range is not None and self.config.smoothing > 0:
            a = self.config.smoothing
            lo = a * self._range[0] + (1 - a) * lo
            hi = a * self._range[1] + (1 - a) * hi
        self._range = (lo, hi)
        span = max(hi - lo, 1e-6)
        out = (raw.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / span)
        return np.clip(out, 0.0, 1.0, out=out)
