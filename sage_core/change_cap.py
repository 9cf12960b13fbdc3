"""Never less steady than its cameras, pixel by pixel: a cap on how much the fused picture changes between frames.

Where both cameras change little from one frame to the next (along the scene's motion), a fusion of them should
change little too; where it changes more than either camera (``F = a Y + b ir + c`` with ``a + b`` above 1 adds
both cameras' changes, its decisions move, the thermal's gain step is let in), the extra change is flicker that
neither camera has (docs/temporal.md, issue 31). :class:`ChangeCap` holds each pixel of the fused frame within
the larger of its two cameras' changes, plus one grey level, of the previous fused frame brought along the
motion:

    F_out = clip(F, W(F_out') - d, W(F_out') + d),  d = max(|Y - W(Y')|, |ir - W(ir')|) + 1/255,

then clipped to ``F +- hold``: the output is never more than ``hold`` (0.02: 5 grey levels, the coefficient
averaging's bound) from the model's own frame, so what the model decides shows, at most ``hold`` late, and
nothing trails. ``W``: the previous frame sampled along the motion that the coefficient averaging measured for
this frame (the DIS flow of the pooled visible luminance, sage_core/fusion_smoothing.py), scaled up to the
frame. Where the motion is wrong (a thermal-only walker, the visible sees a still door) the thermal's own change
along it is large, so the cap lets the change through: it only bites where both cameras hold still along the
motion and the fusion does not.

Causal, one frame of state (the previous output and both cameras' planes). A frame whose predecessor in the
averaging's order has not been capped (two inference workers finishing out of order), or with no motion (the
first frame, a new scene, a new size), passes as it is and starts the state again.
"""

from __future__ import annotations

import numpy as np

#: The change every pixel may make beyond its cameras' (rounding to 8 bits, the cameras' own noise).
TOLERANCE = 1.0 / 255.0


class ChangeCap:
    """``cap(fused, y, ir, index, flow) -> fused``; ``hold`` 0 turns it off (see the module docstring)."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = float(hold)
        self.capped = 0  # frames capped, since start
        self._grid: np.ndarray | None = None  # H x W x 2: each pixel's own coordinates, for the remap maps
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.hold > 0.0

    def reset(self) -> None:
        self._state: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the previous output, Y and ir
        self._index: int | None = None

    def __call__(self, fused: np.ndarray, y: np.ndarray, ir: np.ndarray, index: int,
                 flow: np.ndarray | None) -> np.ndarray:
        """``fused``, ``y``, ``ir``: H x W float32 in [0, 1]; ``index``: the frame's number in the averaging's order;
        ``flow``: (h, w, 2) from this frame to the previous one on a grid h x w covering the frame, or None."""
        if not self.enabled:
            return fused
        state, previous_index = self._state, self._index
        if flow is None or state is None or previous_index != index - 1 or state[0].shape != fused.shape:
            if previous_index is None or index > previous_index:
                self._remember(fused, y, ir, index)
            return fused
        cv2 = _cv2()
        maps = self._maps(flow, fused.shape)
        out, past_y, past_ir = (cv2.remap(plane, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                                for plane in state)
        # In place, with OpenCV's single-pass operations: this runs on every full-resolution frame.
        allowed = cv2.max(cv2.absdiff(y, past_y, dst=past_y), cv2.absdiff(ir, past_ir, dst=past_ir), dst=past_y)
        cv2.add(allowed, TOLERANCE, dst=allowed)
        upper = cv2.add(out, allowed, dst=past_ir)
        lower = cv2.subtract(out, allowed, dst=out)
        out = cv2.max(cv2.min(fused, upper, dst=upper), lower, dst=upper)
        cv2.max(out, cv2.subtract(fused, self.hold, dst=lower), dst=out)
        cv2.min(out, cv2.add(fused, self.hold, dst=lower), dst=out)
        self.capped += 1
        self._remember(out, y, ir, index)
        return out

    def _remember(self, fused: np.ndarray, y: np.ndarray, ir: np.ndarray, index: int) -> None:
        # Copies: the caller's planes may be reused buffers; the output is this cap's own array.
        self._state = (np.asarray(fused, np.float32), np.array(y, np.float32), np.array(ir, np.float32))
        self._index = index

    def _maps(self, flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The remap map (H x W x 2) sampling the previous frame where each pixel was: ``flow`` scaled up from its
        grid (bilinear) plus each pixel's coordinates. Floating point: OpenCV's fixed-point maps cost a conversion
        and remapped no faster here."""
        cv2 = _cv2()
        height, width = shape
        rows, cols = flow.shape[:2]
        if self._grid is None or self._grid.shape[:2] != shape:
            self._grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32),
                                               np.arange(height, dtype=np.float32)))
        scaled = np.asarray(flow, np.float32) * np.array([width / cols, height / rows], np.float32)
        full = cv2.resize(scaled, (width, height), interpolation=cv2.INTER_LINEAR)
        return cv2.add(full, self._grid, dst=full)


def _cv2():
    """OpenCV, on first use (as in fusion_smoothing: the node's parameter table loads no OpenCV)."""
    import cv2

    return cv2
