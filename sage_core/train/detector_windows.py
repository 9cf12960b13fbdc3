"""Windows of the detector's input: where a training crop lies, and how to make exactly its pixels.

The downstream detector (CenterNet, 512x512) sees a frame as @vladmandic/human feeds it: the whole image
resized to its input by TensorFlow's legacy bilinear resize, whatever the aspect ratio. Detector-in-the-loop
training cuts that input into fixed windows (e.g. 256x256 at a stride of 128: a 3x3 grid), so that

- the frozen detector's outputs on each camera are computed once per image and window (the targets are a
  look-up: ``detection_targets.py``), and the window the fused frame is scored on is the same window, with
  the same context (MobileNetV3's squeeze-excite layers average over their input, so a crop's outputs are
  not a crop of the frame's outputs);
- a training step computes only the native pixels one window needs: the model's coefficients on the whole
  pooled frame (its image-wide view sees everything), upsampled and applied on the native region under the
  window alone, then resized into the window. Both resizes are separable gathers with the same weights as
  PyTorch's ``interpolate(align_corners=False)`` and TensorFlow's legacy resize, so the window is the crop of
  the full computation (``tests/test_detection_fit.py`` checks it).

The loss ignores the detector's outputs within ``border`` cells of a window edge that is not the frame's edge
(objects cut by the window, and the convolutions' zero padding); with a stride of half the window and a
border of at most a quarter of it, every cell of the frame is inside some window's kept part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The detector's output stride (CenterNet: 512 -> 128).
OUTPUT_STRIDE = 4


@dataclass(frozen=True)
class Axis:
    """A 1-D resize as a gather: output i = ``x[low[i]] + (x[high[i]] - x[low[i]]) * frac[i]``."""

    low: torch.Tensor
    high: torch.Tensor
    frac: torch.Tensor

    def window(self, start: int, size: int) -> Axis:
        return Axis(self.low[start:start + size], self.high[start:start + size], self.frac[start:start + size])

    def shifted(self, offset: int) -> Axis:
        return Axis(self.low - offset, self.high - offset, self.frac)

    @property
    def span(self) -> tuple[int, int]:
        """The input range [first, last + 1) this gather reads."""
        return int(self.low.min()), int(self.high.max()) + 1


def legacy_axis(size_in: int, size_out: int) -> Axis:
    """TensorFlow's resizeBilinear, align_corners=False, half_pixel_centers=False: source = dest * in / out."""
    src = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    low = torch.clamp(torch.floor(src).long(), max=size_in - 1)
    return Axis(low, torch.clamp(low + 1, max=size_in - 1), (src - low).float())


def upsample_axis(size_in: int, size_out: int) -> Axis:
    """PyTorch's bilinear ``interpolate(size=..., align_corners=False)``: source = (dest + 0.5) * in / out - 0.5."""
    src = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out) - 0.5).clamp(min=0.0)
    low = torch.clamp(torch.floor(src).long(), max=size_in - 1)
    return Axis(low, torch.clamp(low + 1, max=size_in - 1), (src - low).float())


def gather(x: torch.Tensor, dim: int, axis: Axis) -> torch.Tensor:
    """``x`` resized along ``dim`` (differentiable)."""
    shape = [1] * x.ndim
    shape[dim] = -1
    low, high = x.index_select(dim, axis.low.to(x.device)), x.index_select(dim, axis.high.to(x.device))
    return low + (high - low) * axis.frac.to(x.device, x.dtype).view(shape)


@dataclass(frozen=True)
class Window:
    """One window of the detector's input: its top-left corner (detector pixels) and size."""

    top: int
    left: int
    size: int

    def cells(self) -> tuple[slice, slice]:
        """The window's output cells in the frame's output grid."""
        top, left, n = self.top // OUTPUT_STRIDE, self.left // OUTPUT_STRIDE, self.size // OUTPUT_STRIDE
        return slice(top, top + n), slice(left, left + n)


def windows(input_size: tuple[int, int], size: int, stride: int) -> list[Window]:
    """The grid of ``size`` windows at ``stride`` covering the detector input (the last ones flush with the edge)."""
    if size % 32 or stride % OUTPUT_STRIDE:
        raise ValueError(f"window size {size} must be a multiple of 32 and stride {stride} of {OUTPUT_STRIDE}")

    def starts(extent: int) -> list[int]:
        found = list(range(0, max(extent - size, 0) + 1, stride))
        return found if found[-1] + size >= extent else [*found, extent - size]
    return [Window(top, left, size) for top in starts(input_size[0]) for left in starts(input_size[1])]


def kept_cells(window: Window, input_size: tuple[int, int], border: int) -> torch.Tensor:
    """``(n, n)`` float mask of the window's output cells the loss keeps: all but ``border`` cells along each edge
    that is inside the frame (an edge on the frame's own edge keeps its cells)."""
    n = window.size // OUTPUT_STRIDE
    mask = torch.ones(n, n)
    if border <= 0:
        return mask
    if window.top > 0:
        mask[:border] = 0
    if window.left > 0:
        mask[:, :border] = 0
    if window.top + window.size < input_size[0]:
        mask[n - border:] = 0
    if window.left + window.size < input_size[1]:
        mask[:, n - border:] = 0
    return mask


@dataclass(frozen=True)
class WindowGeometry:
    """How one window's detector pixels come from a native ``(H, W)`` frame and its model's pooled grid."""

    rows: Axis  # detector rows of the window -> native rows, relative to ``region``
    cols: Axis
    region: tuple[int, int, int, int]  # native rows [r0, r1), cols [c0, c1) the window reads
    coefficient_rows: Axis  # native rows of the region -> rows of the pooled grid (the model's upsampling)
    coefficient_cols: Axis


def window_geometry(native: tuple[int, int], pooled: tuple[int, int], input_size: tuple[int, int],
                    window: Window) -> WindowGeometry:
    """The gathers that make ``window`` of a native frame resized to ``input_size`` (see the module docstring)."""
    rows = legacy_axis(native[0], input_size[0]).window(window.top, window.size)
    cols = legacy_axis(native[1], input_size[1]).window(window.left, window.size)
    (r0, r1), (c0, c1) = rows.span, cols.span
    up_rows, up_cols = upsample_axis(pooled[0], native[0]), upsample_axis(pooled[1], native[1])
    return WindowGeometry(rows.shifted(r0), cols.shifted(c0), (r0, r1, c0, c1),
                          up_rows.window(r0, r1 - r0), up_cols.window(c0, c1 - c0))


def resize_window(image: torch.Tensor, geometry: WindowGeometry) -> torch.Tensor:
    """``(N, C, r1 - r0, c1 - c0)`` native region -> ``(N, C, size, size)`` window of the detector input."""
    return gather(gather(image, 2, geometry.rows), 3, geometry.cols)


def upsample_region(low: torch.Tensor, geometry: WindowGeometry) -> torch.Tensor:
    """Pooled-grid maps ``(N, C, h, w)`` -> their bilinear upsampling on the native region only."""
    return gather(gather(low, 2, geometry.coefficient_rows), 3, geometry.coefficient_cols)
