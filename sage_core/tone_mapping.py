"""Plateau histogram equalisation: the automatic gain control thermal cameras ship, for ``ThermalNormalizer``.

Why not a linear stretch: a hot object entering the view widens the range between the percentiles, so a
linear map squeezes everything else into a few grey levels (the picture "scales down when a hot object is
introduced"). Histogram equalisation gives each raw value grey levels by how much of the picture uses it,
so the empty gap between the scene and the hot object costs nothing. Plain equalisation gives a large
uniform area (the hot engine, the sky) as many grey levels as its pixel count; the plateau caps every bin
at ``plateau_level`` times the mean count of the occupied bins, so grey levels go by how many distinct raw
values an object spans, not by its area: a small person keeps its contrast and a large hot block takes
only the few bins its own values occupy.

Equalisation alone shows only the order of temperatures, not how far apart they are: the empty range between
a warm road and a person takes no grey levels, so the person is barely brighter than the road, and the fused
frame shows them so (the demo's night street: 63 grey levels apart in the fused frame against 197 with a linear
stretch). ``linear_share`` of the curve is therefore a linear stretch over the same range (what camera makers
call "linear percent"): the gap gets some grey levels back, and a hot object entering moves the rest by at
most that share of what a linear stretch would (docs/temporal.md has the measured trade).

The curve is piecewise linear on uniform knots (``_BINS`` bins over the frame's range without its tails),
so 16-bit frames are mapped through a 65536-entry table and 8-bit ones through a 256-entry one, and it is
smoothed over time (the previous curve, evaluated on the new knots, weighted by ``smoothing``), which is
what camera makers call damping. No detail enhancement: the fusion network takes fine detail from both
cameras, and boosting the thermal detail layer boosts its noise, which the network would pass on; an
edge-preserving split of the whole frame would also cost several times the rest of the normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Histogram bins over the frame's range: finer than any structure worth a grey level, few enough to fill.
_BINS = 1024
#: Pixels the histogram is taken from (a regular subsample): the same cost at any resolution.
_TARGET_SAMPLES = 65536


@dataclass(frozen=True)
class ToneCurve:
    """A non-decreasing map from raw values to [0, 1]: ``y`` at the uniform knots ``x0 + k * step``."""

    x0: float
    step: float
    y: np.ndarray  # float64, len = bins + 1, from 0 to 1

    @property
    def knots(self) -> np.ndarray:
        return self.x0 + self.step * np.arange(self.y.size)

    def shifted(self, offset: float) -> ToneCurve:
        """The same curve for raw values moved by ``offset`` (a sensor offset change, not a new scene)."""
        return ToneCurve(self.x0 + offset, self.step, self.y)


def histogram_sample(raw: np.ndarray) -> np.ndarray:
    """A regular subsample of about ``_TARGET_SAMPLES`` pixels (a view, no copy)."""
    stride = max(1, int(math.sqrt(raw.size / _TARGET_SAMPLES)))
    return raw[::stride, ::stride]


def plateau_curve(sample: np.ndarray, lo: float, hi: float, plateau_level: float,
                  linear_share: float = 0.0) -> ToneCurve:
    """The plateau-equalised curve of ``sample`` over [lo, hi], ``linear_share`` of it a linear stretch over the
    same range (see the module docstring)."""
    integer = np.issubdtype(sample.dtype, np.integer)
    span = max(hi - lo, 1e-6)
    if integer:  # whole-count bins centred on the counts: no comb pattern from counts split between bins
        step = float(max(1, math.ceil((span + 1) / _BINS)))
        x0 = math.floor(lo) - 0.5
        bins = max(1, int(math.ceil((math.floor(hi) + 0.5 - x0) / step)))
    else:
        step, x0, bins = span / _BINS, float(lo), _BINS
    index = np.subtract(sample, x0, dtype=np.float64).ravel()
    index *= 1.0 / step
    np.clip(index, 0, bins - 1, out=index)
    counts = np.bincount(index.astype(np.intp), minlength=bins).astype(np.float64)
    occupied = max(int(np.count_nonzero(counts)), 1)
    np.minimum(counts, plateau_level * counts.sum() / occupied, out=counts)
    cumulative = np.concatenate(([0.0], np.cumsum(counts)))
    equalised = cumulative / max(cumulative[-1], 1e-12)
    if linear_share <= 0.0:
        return ToneCurve(x0, step, equalised)
    linear = np.clip((x0 + step * np.arange(bins + 1) - lo) / span, 0.0, 1.0)
    return ToneCurve(x0, step, (1.0 - linear_share) * equalised + linear_share * linear)


def flat_curve(value: float) -> ToneCurve:
    """For a frame with no range (constant): everything at mid grey rather than black or white."""
    return ToneCurve(value - 1.0, 1.0, np.array([0.0, 0.5, 1.0]))


def blend(previous: ToneCurve, new: ToneCurve, weight: float) -> ToneCurve:
    """``weight`` of the previous curve and the rest of the new one, on the new curve's knots (damping)."""
    old = np.interp(new.knots, previous.knots, previous.y)
    return ToneCurve(new.x0, new.step, weight * old + (1.0 - weight) * new.y)


def apply_curve(raw: np.ndarray, curve: ToneCurve) -> np.ndarray:
    """Raw H x W -> float32 [0, 1] through the curve, always by a table lookup.

    8/16-bit values index a table directly. Other types (floats, wider integers) are first quantised to
    65536 levels over the curve's knots (1/64 of a bin: far finer than any sensor's noise), which is
    several times faster than interpolating every pixel.
    """
    if raw.dtype == np.uint8:
        import cv2  # on first use: the node's parameter table imports sage_core.thermal, and loads no OpenCV

        return cv2.LUT(raw, _table(curve, np.arange(256, dtype=np.float64)))
    if raw.dtype == np.uint16:
        return np.take(_table(curve, np.arange(65536, dtype=np.float64)), raw)  # 4x faster than table[raw]
    levels = 65536
    span = curve.step * (curve.y.size - 1)
    scale = (levels - 1) / span
    with np.errstate(over="ignore"):  # absurd values of a bad frame become inf, then the top of the table
        index = np.subtract(raw, np.float32(curve.x0), dtype=np.float32)
        index *= np.float32(scale)
    np.clip(index, 0.0, np.float32(levels - 1), out=index)
    index += np.float32(0.5)  # the cast truncates: rounds to the nearest level
    table = _table(curve, curve.x0 + np.arange(levels, dtype=np.float64) / scale)
    return np.take(table, index.astype(np.uint16))


def _table(curve: ToneCurve, values: np.ndarray) -> np.ndarray:
    return np.interp(values, curve.knots, curve.y).astype(np.float32)
