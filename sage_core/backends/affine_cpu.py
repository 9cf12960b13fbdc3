"""AffineFuse on a CPU, split: the network in a backend, the full-resolution arithmetic in OpenCV.

AffineFuse computes per-pixel coefficients ``(a, b, c)`` at 1/4 resolution, upsamples them bilinearly
and applies ``F = a Y + b ir + c`` at full resolution. On a CPU the full-resolution parts are memory
traffic, not arithmetic, and OpenCV does them in fewer passes than a graph runtime: the 4 x 4 average
pooling of the inputs (``cv2.resize`` with ``INTER_AREA`` at an integer factor is the box mean; the graph
would also copy both planes into one tensor first), and the bilinear upsampling of the coefficients
(half-pixel centres, edge replicated: identical to ``align_corners=False`` to 1e-7). The torch and ONNX
Runtime backends use this split on a CPU for
models that offer it (``FusionModel.cpu_split()``: AffineFuse without the full-resolution refinement, the
shipped default): the convolutions on the pooled planes (the split's ``head``) run in the backend, the rest
here; same output to 1e-5.

The head's cost grows with the frame, though what it decides may not need more pixels: the coefficients
are smooth by design, and the model was trained on crops of 640x480-class images. :data:`MAX_HEAD_PIXELS`
(off by default) bounds the pooled pixels the head sees on this path: a larger frame is pooled by a larger
multiple of the model's factor (8 at 1024x768 and 1280x1024), so the head sees it about as it sees a
640x512 frame and costs about as much, and its coefficients are upsampled over the full frame as before.
It changes the output above the bound, and makes it differ from the full graph's (TorchScript, TensorRT,
colour on the device), so it stays off until an evaluation on larger frames decides it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

#: ``(coefficients (3, h, w), pooled (Y, ir) (2, h, w)) -> coefficients``: a change of the decisions before they
#: are applied (the temporal smoothing of sage_core.fusion_smoothing). A filter that also has a method
#: ``finish(fused, y, ir) -> fused`` (H x W float32 planes) sees the fused frame too (the change cap).
CoefficientFilter = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Most pooled pixels the head runs on (e.g. 2 * 160 * 128: twice 640x512 at 1/4); None: no bound, the
#: full graph's output (the default). See the module docstring.
MAX_HEAD_PIXELS: int | None = None


def head_pooling(height: int, width: int, scale: int) -> int:
    """The pooling factor for a frame: the model's ``scale``, times the smallest whole number that keeps the
    pooled grid within :data:`MAX_HEAD_PIXELS`."""
    factor = scale
    while MAX_HEAD_PIXELS is not None and -(-height // factor) * -(-width // factor) > MAX_HEAD_PIXELS:
        factor += scale
    return factor


def pool_pair(y: np.ndarray, ir: np.ndarray, scale: int) -> np.ndarray:
    """``(1, 2, ceil(H/scale), ceil(W/scale))`` float32: both planes averaged over scale x scale windows, as
    ``avg_pool2d(..., ceil_mode=True)`` does (a partial window at the right or bottom edge averages its valid
    pixels only)."""
    height, width = y.shape
    pooled = np.empty((1, 2, -(-height // scale), -(-width // scale)), np.float32)
    for plane, out in zip((y, ir), pooled[0]):
        _pool_into(plane, scale, out)
    return pooled


def _pool_into(plane: np.ndarray, scale: int, out: np.ndarray) -> None:
    height, width = plane.shape
    rows, cols = height // scale, width // scale  # whole windows
    whole_h, whole_w = rows * scale, cols * scale
    if rows and cols:
        out[:rows, :cols] = cv2.resize(plane[:whole_h, :whole_w], (cols, rows), interpolation=cv2.INTER_AREA)
    if whole_w < width:  # the partial column of windows at the right edge
        out[:rows, cols] = plane[:whole_h, whole_w:].reshape(rows, scale, width - whole_w).mean(axis=(1, 2))
    if whole_h < height:  # the partial row at the bottom, and the corner
        out[rows, :cols] = plane[whole_h:, :whole_w].reshape(height - whole_h, cols, scale).mean(axis=(0, 2))
        if whole_w < width:
            out[rows, cols] = plane[whole_h:, whole_w:].mean()


def apply_coefficients(low: np.ndarray, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Coefficients ``(3, h, w)`` -> fused H x W float32, as ``AffineFuse.forward_features`` computes it."""
    height, width = y.shape
    # One plane at a time: no interleaved 3-channel copy to split again (half the time of resizing all three).
    a, b, c = (cv2.resize(np.ascontiguousarray(plane, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
               for plane in low)
    fused = np.multiply(a, y, out=a)  # (a Y + b ir) + c, in torch's order; reusing the planes' memory
    fused += np.multiply(b, ir, out=b)
    fused += c
    return fused


def fuse_split(head: Callable[[np.ndarray], np.ndarray], y: np.ndarray, ir: np.ndarray, scale: int,
               coefficient_filter: CoefficientFilter | None = None) -> np.ndarray:
    """The split path: pool here, ``head(pooled (1, 2, h, w)) -> (3, h, w)`` in a backend, the filter, apply here."""
    y = np.ascontiguousarray(y, dtype=np.float32)
    ir = np.ascontiguousarray(ir, dtype=np.float32)
    pooled = pool_pair(y, ir, head_pooling(*y.shape, scale))
    low = head(pooled)
    if coefficient_filter is None:
        return apply_coefficients(low, y, ir)
    fused = apply_coefficients(coefficient_filter(low, pooled[0]), y, ir)
    finish = getattr(coefficient_filter, "finish", None)
    return fused if finish is None else finish(fused, y, ir)
