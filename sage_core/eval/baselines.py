"""Classical fusion rules, for context in every comparison table (not products).

Each runs on luminance through the same colour pipeline as the networks
(:class:`sage_core.fuser.LuminanceFuser`):

- ``average``: (Y + ir) / 2;
- ``max``: per-pixel maximum;
- ``gff``: Guided Filtering Fusion (S. Li, X. Kang, J. Hu, "Image Fusion With Guided
  Filtering", IEEE TIP 2013): two-scale base/detail decomposition, saliency from a
  Laplacian magnitude smoothed by a Gaussian, binary weight maps refined by guided
  filters (large and smooth for the base layers, small and sharp for the details).
"""

from __future__ import annotations

import cv2
import numpy as np

from sage_core.errors import ConfigError
from sage_core.fuser import LuminanceFuser


class AverageFusion(LuminanceFuser):
    name = "average"

    def fuse_luminance(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        return (y + ir) * np.float32(0.5)


class MaxFusion(LuminanceFuser):
    name = "max"

    def fuse_luminance(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        return np.maximum(y, ir)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with box windows of side 2 * radius + 1 (gray guide)."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(source)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * source) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


class GuidedFilterFusion(LuminanceFuser):
    """GFF with the paper's parameters: 31x31 mean filter, Gaussian r=5 sigma=5, (r1, eps1) = (45, 0.3),
    (r2, eps2) = (7, 1e-6)."""

    name = "gff"

    def __init__(self, base_size: int = 31, r1: int = 45, eps1: float = 0.3, r2: int = 7, eps2: float = 1e-6,
                 saliency_radius: int = 5, saliency_sigma: float = 5.0) -> None:
        self.base_size, self.r1, self.eps1, self.r2, self.eps2 = base_size, r1, eps1, r2, eps2
        self.saliency_radius, self.saliency_sigma = saliency_radius, saliency_sigma

    def fuse_luminance(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        sources = [y.astype(np.float32), ir.astype(np.float32)]
        bases = [cv2.blur(s, (self.base_size, self.base_size), borderType=cv2.BORDER_REFLECT) for s in sources]
        details = [s - b for s, b in zip(sources, bases)]
        kernel = 2 * self.saliency_radius + 1
        saliency = [cv2.GaussianBlur(np.abs(cv2.Laplacian(s, cv2.CV_32F, ksize=1)), (kernel, kernel),
                                     self.saliency_sigma) for s in sources]
        winner = np.argmax(np.stack(saliency), axis=0)
        masks = [(winner == n).astype(np.float32) for n in range(len(sources))]
        w_base = [guided_filter(s, m, self.r1, self.eps1) for s, m in zip(sources, masks)]
        w_detail = [guided_filter(s, m, self.r2, self.eps2) for s, m in zip(sources, masks)]
        total_base = np.maximum(sum(w_base), 1e-6)
        total_detail = np.maximum(sum(w_detail), 1e-6)
        fused_base = sum(w * b for w, b in zip(w_base, bases)) / total_base
        fused_detail = sum(w * d for w, d in zip(w_detail, details)) / total_detail
        return fused_base + fused_detail


BASELINES: dict[str, type[LuminanceFuser]] = {
    "average": AverageFusion, "max": MaxFusion, "gff": GuidedFilterFusion,
}


def make_baseline(name: str) -> LuminanceFuser:
    try:
        return BASELINES[name]()
    except KeyError:
        raise ConfigError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}") from None
