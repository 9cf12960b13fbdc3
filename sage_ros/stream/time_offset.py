"""The offset between the two cameras' clocks, estimated from what they see: no hardware sync needed.

Two cameras on one rig see the same motion. Each stream gets a motion signal, one number per frame:
how much its picture changed since its previous frame (mean absolute difference of a small, contrast-
normalised thumbnail, placed at the midpoint of the two frames' stamps). If the thermal camera stamps its
frames ``d`` seconds late, its signal is the RGB signal shifted by ``d``. :func:`estimate_offset` finds
the shift that best correlates the two over a sliding window (Pearson correlation on a common time grid,
coarse then fine, with a parabolic peak; each of 4x4 cells of the picture has its own signal, so where
things move counts too), and says how sure it is: the peak correlation and its margin over the best
rival peak (a periodic motion gives several peaks: no estimate).

Why this signal: it needs no registration between the cameras (a thermal and a visible picture of the
same scene differ in every pixel, but both change when something moves), it is cheap (a 64x48
thumbnail per frame), and a static scene gives a flat signal, which :class:`TimeOffsetEstimator`
detects and refuses to estimate from. The applied offset moves towards a confident estimate in bounded
steps, so one bad window cannot throw pairing off.

Convention: ``offset_s`` is how late the thermal stamps are against the RGB stamps for the same
moment; pairing subtracts it from thermal stamps.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.cameras import Camera
from sage_ros.stream.alignment_watch import lower_this_threads_priority

THUMBNAIL = (64, 48)  # (width, height) the motion signal is measured on
CELLS = (4, 4)  # the thumbnail's cells (across, down), one motion signal each: where things move matters too


@dataclass(frozen=True)
class OffsetEstimate:
    """An estimate (None when there is none) with its confidence in [0, 1] and why."""

    offset_s: float | None
    confidence: float
    reason: str


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small float32 gray picture of any camera image (8/16-bit, float, gray or colour), contrast-normalised.
    Every n-th pixel first (at most 4x the thumbnail's width), then gray, then averaged down, in the image's
    own type: a fraction of a millisecond, on the executor."""
    step = max(1, image.shape[1] // (4 * THUMBNAIL[0]))
    if step > 1:
        image = cv2.resize(image, (image.shape[1] // step, image.shape[0] // step), interpolation=cv2.INTER_NEAREST)
    if image.ndim == 3:
        image = image[..., 0] / 3.0 + image[..., 1] / 3.0 + image[..., 2] / 3.0  # any channel order
    small = cv2.resize(np.asarray(image, np.float32), THUMBNAIL, interpolation=cv2.INTER_AREA)
    spread = float(small.std())
    return (small - float(small.mean())) / (spread if spread > 1e-6 else 1.0)


def _on_grid(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each column of ``values`` (sampled at ``times``) linearly resampled on ``grid``; NaN outside ``times``."""
    out = np.stack([np.interp(grid, times, values[:, c]) for c in range(values.shape[1])], axis=1)
    out[(grid < times[0]) | (grid > times[-1])] = np.nan
    return out


class _LagScores:
    """Correlation of ``x`` (thermal, on a grid extended by ``reach`` rows each way; NaN where it has no
    samples) shifted by ``k`` rows against ``y`` (rgb), averaged over cells: per lag one product, the sums
    from prefix sums (an estimate runs every second on a 2-core robot: it must stay in milliseconds)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, reach: int) -> None:
        covered = np.flatnonzero(~np.isnan(x).any(axis=1))
        self.first, self.end = (int(covered[0]), int(covered[-1]) + 1) if covered.size else (0, 0)
        self.x, self.y, self.reach = np.nan_to_num(x), y, reach
        zero = np.zeros((1, x.shape[1]))
        self.px, self.pxx = (np.vstack([zero, np.cumsum(v, axis=0)]) for v in (self.x, self.x * self.x))
        self.py, self.pyy = (np.vstack([zero, np.cumsum(v, axis=0)]) for v in (y, y * y))

    def __call__(self, k: int) -> float:
        n, offset = self.y.shape[0], self.reach + k
        i0, i1 = max(0, self.first - offset), min(n, self.end - offset)
        m = i1 - i0
        if m < max(10, n // 2):
            return -1.0
        x0, x1 = i0 + offset, i1 + offset
        sx, sxx = self.px[x1] - self.px[x0], self.pxx[x1] - self.pxx[x0]
        sy, syy = self.py[i1] - self.py[i0], self.pyy[i1] - self.pyy[i0]
        sxy = np.einsum("ij,ij->j", self.x[x0:x1], self.y[i0:i1])
        cov, vx, vy = sxy - sx * sy / m, sxx - sx * sx / m, syy - sy * sy / m
        live = (vx > 1e-12) & (vy > 1e-12)
        return float((cov[live] / np.sqrt(vx[live] * vy[live])).mean()) if live.any() else -1.0


def _rival(scores: np.ndarray, best: int) -> float:
    """The best score outside the main peak's lobe (where scores fall away from ``best``), or -1."""
    left = best
    while left > 0 and scores[left - 1] <= scores[left]:
        left -= 1
    right = best
    while right < scores.size - 1 and scores[right + 1] <= scores[right]:
        right += 1
    outside = np.concatenate([scores[:left], scores[right + 1:]])
    return float(outside.max()) if outside.size else -1.0


def estimate_offset(thermal: tuple[np.ndarray, np.ndarray], rgb: tuple[np.ndarray, np.ndarray],
                    max_offset_s: float, grid_s: float = 0.004, coarse: int = 3) -> tuple[float, float, float]:
    """(offset, peak correlation, margin over the best rival peak) of two motion signals, each (times in s,
    values: samples x cells); the offset is how late ``thermal`` is against ``rgb``.

    Both are resampled once on a ``grid_s`` grid (thermal on one extended by ``max_offset_s`` each way),
    so a lag is a shift of rows: every ``coarse``-th lag first, then each lag around the best, then a
    parabola through the three best."""
    grid = np.arange(rgb[0][0], rgb[0][-1], grid_s)
    reach = int(round(max_offset_s / grid_s))
    extended = np.arange(grid[0] - reach * grid_s, grid[-1] + (reach + 0.5) * grid_s, grid_s)
    score = _LagScores(_on_grid(*thermal, extended), _on_grid(*rgb, grid), reach)  # k: thermal late by k steps

    lags = np.arange(-reach, reach + 1, coarse)
    scores = np.array([score(k) for k in lags])
    best = int(np.argmax(scores))
    margin = float(scores[best] - _rival(scores, best))
    fine = {k: score(k) for k in range(max(-reach, lags[best] - coarse), min(reach, lags[best] + coarse) + 1)}
    k = max(fine, key=fine.get)
    offset = k * grid_s
    if k - 1 in fine and k + 1 in fine:  # parabolic peak through the three best points
        left, mid, right = fine[k - 1], fine[k], fine[k + 1]
        curvature = left - 2 * mid + right
        if curvature < 0:
            offset += 0.5 * (left - right) / curvature * grid_s
    return offset, fine[k], margin


class _MotionTrack:
    """One camera's motion signal over the last ``window_s`` seconds of its stamps."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, np.ndarray]] = deque()
        self._previous: tuple[float, np.ndarray] | None = None

    def add(self, stamp_s: float, image: np.ndarray) -> None:
        small = thumbnail(image)
        if self._previous is not None and stamp_s > self._previous[0]:
            previous_s, previous = self._previous
            motion = np.abs(small - previous).reshape(CELLS[1], THUMBNAIL[1] // CELLS[1], CELLS[0],
                                                      THUMBNAIL[0] // CELLS[0]).mean(axis=(1, 3)).ravel()
            self.samples.append((0.5 * (stamp_s + previous_s), motion))
            while self.samples and stamp_s - self.samples[0][0] > self.window_s:
                self.samples.popleft()
        elif self._previous is not None and stamp_s <= self._previous[0] - self.window_s:
            self.samples.clear()  # the clock went back (a bag restarted): start afresh
        self._previous = (stamp_s, small)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, samples x cells)."""
        if not self.samples:
            return np.zeros(0), np.zeros((0, CELLS[0] * CELLS[1]))
        times, values = zip(*self.samples)
        return np.asarray(times, np.float64), np.stack(values).astype(np.float64)


class TimeOffsetEstimator:
    """Feeds on both cameras' frames (:meth:`add`); :meth:`update` estimates and moves the applied offset.

    ``applied_s`` starts at ``initial_s`` (the ``time_offset`` parameter) and, when ``follow`` is set
    (``auto_time_offset``), moves towards each confident estimate by at most ``max_step_s``. No estimate
    on a static scene (the total motion varies by less than ``min_motion`` of its mean: sensor noise
    alone), with too few frames, or with a weak or ambiguous peak.
    """

    def __init__(self, initial_s: float = 0.0, follow: bool = False, window_s: float = 10.0,
                 max_offset_s: float = 0.5, min_confidence: float = 0.25, min_margin: float = 0.015,
                 min_motion: float = 0.05, max_step_s: float = 0.05, min_frames: int = 30) -> None:
        self.applied_s, self.follow = initial_s, follow
        self.max_offset_s, self.min_confidence, self.min_margin = max_offset_s, min_confidence, min_margin
        self.min_motion, self.max_step_s, self.min_frames = min_motion, max_step_s, min_frames
        self.tracks = {camera: _MotionTrack(window_s) for camera in Camera}
        self.last = OffsetEstimate(None, 0.0, "not enough frames yet")
        self._lock = threading.Lock()  # frames come from the executor and decoders, updates from a watch thread

    def add(self, camera: Camera, stamp_ns: int, image: np.ndarray) -> None:
        with self._lock:
            self.tracks[camera].add(stamp_ns / 1e9, image)

    def update(self) -> OffsetEstimate:
        """Estimate from the current window; follow it if confident. Returns (and keeps) the estimate."""
        with self._lock:
            thermal, rgb = self.tracks[Camera.THERMAL].arrays(), self.tracks[Camera.RGB].arrays()
        self.last = self._estimate(thermal, rgb)
        if self.follow and self.last.offset_s is not None:
            step = float(np.clip(self.last.offset_s - self.applied_s, -self.max_step_s, self.max_step_s))
            self.applied_s += step
        return self.last

    def _estimate(self, thermal: tuple[np.ndarray, np.ndarray], rgb: tuple[np.ndarray, np.ndarray]) -> OffsetEstimate:
        if min(thermal[0].size, rgb[0].size) < self.min_frames:
            return OffsetEstimate(None, 0.0, f"not enough frames yet ({min(thermal[0].size, rgb[0].size)} "
                                             f"of {self.min_frames})")
        totals = [values.mean(axis=1) for values in (thermal[1], rgb[1])]
        motion = min(float(total.std() / max(float(total.mean()), 1e-9)) for total in totals)
        if motion < self.min_motion:
            return OffsetEstimate(None, 0.0, f"static scene (motion varies {motion:.3f} < {self.min_motion})")
        offset, peak, margin = estimate_offset(thermal, rgb, self.max_offset_s)
        confidence = max(0.0, min(1.0, peak))
        if peak < self.min_confidence:
            return OffsetEstimate(None, confidence, f"weak correlation ({peak:.2f} < {self.min_confidence})")
        if margin < self.min_margin:
            return OffsetEstimate(None, confidence, f"ambiguous: another shift correlates almost as well "
                                                    f"(margin {margin:.3f})")
        return OffsetEstimate(offset, confidence, f"correlation {peak:.2f}, margin {margin:.2f}")


class OffsetWatch:
    """Runs :meth:`TimeOffsetEstimator.update` every ``period_s`` on a daemon thread at the lowest CPU priority
    (an estimate costs tens of milliseconds: never on the executor, never ahead of a frame)."""

    def __init__(self, estimator: TimeOffsetEstimator, period_s: float = 1.0) -> None:
        self.estimator, self.period_s = estimator, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sage_time_offset", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        lower_this_threads_priority()
        while not self._stop.wait(self.period_s):
            self.estimator.update()
