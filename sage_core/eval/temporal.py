"""Temporal stability of a video: the flow-based warping error (docs/temporal.md gives the definition).

For each pair of consecutive frames, optical flow is computed once on a reference stream (the visible
input: the motion of the scene), both ways, with OpenCV's DIS; the later frame of every stream is
compared with the earlier one warped along that flow, on the pixels where the forward and backward
flows agree (not occluded, inside the frame). The warping error of a stream is the root of the mean
squared difference, in grey levels, over those pixels and all pairs: 0 for a stream that only moves
with the scene, larger for flicker, pumping and texture that boils. The brightness flicker (mean
absolute change of the mean grey level between consecutive frames) is reported beside it, as pumping
shows there first, and so is the relative warping error (the warping error over the stream's contrast,
the RMS of its frames' standard deviations), since a stream with twice the contrast has twice the error
for the same relative noise.

A fused frame holds content of two cameras, and content that only the thermal camera sees (or sees with
parallax) moves as the thermal does, not as the visible flow says. Given a second reference (the thermal
input), the flow is also computed on it (both ways, its own mask), and every stream also gets the
two-source warping error (``source_flow_error``): per pixel the smaller of the squared errors under the
two flows (only the one flow where the other's mask leaves the pixel out), RMS over the pixels valid
under at least one. The visible-flow warping error stays the primary measure, computed as without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from sage_core.errors import FusionInputError

#: Forward-backward consistency (Sundaram et al., ECCV 2010): a pixel is occluded when the round trip
#: misses by more than ALPHA * (|f|^2 + |b|^2) + BETA pixels^2.
_ALPHA, _BETA = 0.01, 0.5


def gray(image: np.ndarray) -> np.ndarray:
    """8-bit gray or BGR -> float32 gray in [0, 255] (ITU-R 601 luma)."""
    if image.dtype != np.uint8:
        raise FusionInputError(f"temporal metrics take 8-bit frames, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3:
        image = image[..., 0]
    return image.astype(np.float32)


def _warp(image: np.ndarray, flow: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``grid + flow`` (bilinear)."""
    coords = grid + flow
    return cv2.remap(image, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def valid_mask(forward: np.ndarray, backward: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Pixels of frame t+1 whose backward flow lands inside frame t and comes back (not occluded).

    ``backward`` maps frame t+1 to frame t, ``forward`` frame t to frame t+1."""
    h, w = backward.shape[:2]
    target = grid + backward
    inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
    forward_there = _warp(forward, backward, grid)
    miss = np.sum((forward_there + backward) ** 2, axis=2)
    bound = _ALPHA * (np.sum(forward_there ** 2, axis=2) + np.sum(backward ** 2, axis=2)) + _BETA
    return inside & (miss <= bound)


@dataclass
class StreamError:
    """Running sums of one stream's warping error and brightness flicker."""

    squared: float = 0.0
    pixels: int = 0
    flicker: float = 0.0
    pairs: int = 0
    variance: float = 0.0  # sum of the frames' variances (the later frame of each pair)
    source_squared: float = 0.0  # the two-source error's sums (only with a second reference)
    source_pixels: int = 0

    @property
    def warping_error(self) -> float:
        return float(np.sqrt(self.squared / self.pixels)) if self.pixels else float("nan")

    @property
    def source_flow_error(self) -> float:
        return float(np.sqrt(self.source_squared / self.source_pixels)) if self.source_pixels else float("nan")

    @property
    def relative_error(self) -> float:
        contrast = np.sqrt(self.variance / self.pairs) if self.pairs else 0.0
        return self.warping_error / contrast if contrast > 0 else float("nan")

    @property
    def brightness_flicker(self) -> float:
        return self.flicker / self.pairs if self.pairs else float("nan")


@dataclass
class TemporalStability:
    """Feed frames in order with :meth:`add`; read :meth:`summary`. One flow per step on ``reference``
    (and one on ``second_reference`` when given)."""

    preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    streams: dict[str, StreamError] = field(default_factory=dict)
    _previous: dict[str, np.ndarray] = field(default_factory=dict)
    _reference: np.ndarray | None = None
    _second: np.ndarray | None = None
    _grid: np.ndarray | None = None
    #: With ``keep_maps``, each stream's per-pixel two-source squared error of the last step (0 where neither flow
    #: is valid), for pictures of where a stream's error lies (benchmarks/bench_temporal_calm.py).
    keep_maps: bool = False
    maps: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._flow = cv2.DISOpticalFlow_create(self.preset)
        # Its own instance, so the second flow cannot touch the primary one's state.
        self._second_flow = cv2.DISOpticalFlow_create(self.preset)

    def add(self, reference: np.ndarray, frames: dict[str, np.ndarray],
            second_reference: np.ndarray | None = None) -> None:
        """One time step: the reference frame (motion), every stream's frame (8-bit gray or BGR) and
        optionally a second reference (the thermal input) for the two-source warping error."""
        ref = gray(reference).astype(np.uint8)
        current = {name: gray(frame) for name, frame in frames.items()}
        for name, frame in current.items():
            if frame.shape != ref.shape:
                raise FusionInputError(f"stream {name}: {frame.shape} frames, reference {ref.shape}")
        second = None
        if second_reference is not None:
            second = gray(second_reference).astype(np.uint8)
            if second.shape != ref.shape:
                raise FusionInputError(f"TemporalStability.add: second reference is {second.shape[1]}x"
                                       f"{second.shape[0]}, expected the reference's {ref.shape[1]}x{ref.shape[0]}")
        if self._reference is not None and (second is None) != (self._second is None):
            # A two-source error over only some of the pairs would not compare with the primary one.
            raise FusionInputError("TemporalStability.add: second reference given at some time steps only; "
                                   "expected it at every step or at none")
        if self._reference is not None:
            self._score(ref, current, second)
        self._reference, self._previous, self._second = ref, current, second

    def _motion(self, flow: cv2.DISOpticalFlow, earlier: np.ndarray,
                later: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backward flow (frame t+1 -> frame t) of one reference and its forward-backward mask."""
        backward = flow.calc(later, earlier, None)
        forward = flow.calc(earlier, later, None)
        return backward, valid_mask(forward, backward, self._grid)

    def _score(self, ref: np.ndarray, current: dict[str, np.ndarray], second: np.ndarray | None) -> None:
        if self._grid is None or self._grid.shape[:2] != ref.shape:
            h, w = ref.shape
            self._grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
        backward, mask = self._motion(self._flow, self._reference, ref)
        count = int(mask.sum())
        if second is not None:
            second_backward, second_mask = self._motion(self._second_flow, self._second, second)
            either = mask | second_mask
        for name, frame in current.items():
            previous = self._previous.get(name)
            if previous is None:
                continue
            stream = self.streams.setdefault(name, StreamError())
            difference = frame - _warp(previous, backward, self._grid)
            stream.squared += float(np.square(difference[mask], dtype=np.float64).sum())
            stream.pixels += count
            stream.flicker += abs(float(frame.mean()) - float(previous.mean()))
            stream.variance += float(frame.var(dtype=np.float64))
            stream.pairs += 1
            if second is not None:
                # A pixel left out by one flow's mask is scored by the other flow alone.
                first = np.where(mask, np.square(difference), np.inf)
                other = np.where(second_mask, np.square(frame - _warp(previous, second_backward, self._grid)),
                                 np.inf)
                best = np.minimum(first, other)
                stream.source_squared += float(best[either].sum(dtype=np.float64))
                stream.source_pixels += int(either.sum())
                if self.keep_maps:
                    self.maps[name] = np.where(either, best, 0.0)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stream: {"warping_error": grey levels RMS, "relative_error": over the stream's contrast,
        "brightness_flicker": grey levels, "pairs": n}}, plus "source_flow_error" (grey levels RMS,
        the better of the two flows per pixel) when a second reference was given."""
        result = {}
        for name, s in self.streams.items():
            result[name] = {"warping_error": s.warping_error, "relative_error": s.relative_error,
                            "brightness_flicker": s.brightness_flicker, "pairs": float(s.pairs)}
            if self._second is not None:
                result[name]["source_flow_error"] = s.source_flow_error
        return result
