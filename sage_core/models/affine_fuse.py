"""AffineFuse: a fusion student for real time on small CPUs, most of its work at low resolution.

A small CNN looks at the source pair at 1/``scale`` resolution and predicts, per
low-resolution pixel, the coefficients of a local affine fusion rule
``F = a * Y + b * ir + c``. The coefficients vary smoothly, so they are upsampled
bilinearly and applied to the full-resolution sources: every edge and texture of
both cameras reaches the output at full resolution, while the decisions (which
source dominates where, how much contrast) are made with a wide receptive field
at a fraction of the cost. An optional tiny full-resolution refinement (two 3x3
convolutions over ``Y, ir, F``) corrects what a smooth affine rule cannot.

Only convolutions, average pooling, bilinear resizing, replicate padding and
element-wise arithmetic, no normalisation layers: exports to TorchScript, ONNX
and TensorRT unchanged, for any input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sage_core.models.base import CpuSplit, FusionModel


class Refinement(nn.Module):
    """Two 3x3 convolutions over (Y, ir, F) adding a full-resolution correction; starts as a no-op."""

    def __init__(self, channels: int, act: nn.Module) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, 1, 3, padding=1)
        self.act = act
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, y: torch.Tensor, ir: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        return fused + self.conv_out(self.act(self.conv_in(torch.cat((y, ir, fused), dim=1))))


class NoRefinement(nn.Module):
    def forward(self, y: torch.Tensor, ir: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        return fused


class AffineHead(nn.Module):
    """``forward(pooled) -> (N, 3, h, w)`` coefficients from ``(N, 2, h, w)`` pooled (Y, ir): the part of an
    AffineFuse a CPU backend runs (and an exporter sees) in the split."""

    def __init__(self, model: AffineFuse) -> None:
        super().__init__()
        self.model = model

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.model.from_pooled(pooled)[0]


class AffineFuse(FusionModel):
    """``(Y, ir) -> F``; features are the low-resolution hidden layers."""

    arch = "affine_fuse"

    def __init__(self, width: int = 16, scale: int = 4, dilations: Sequence[int] = (1, 2, 4),
                 refine: int = 4) -> None:
        super().__init__()
        self.width, self.scale, self.dilations, self.refine = int(width), int(scale), tuple(dilations), int(refine)
        self.stem = nn.Conv2d(2, self.width, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(self.width, self.width, 3, padding=d, dilation=d) for d in self.dilations)
        self.coefficients = nn.Conv2d(self.width, 3, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        # Start as the average of the sources (a = b = 0.5, c = 0): training begins from a sane fusion.
        nn.init.zeros_(self.coefficients.weight)
        with torch.no_grad():
            self.coefficients.bias.copy_(torch.tensor([0.5, 0.5, 0.0]))
        # A module either way (not an ``if`` in forward), so TorchScript compiles one concrete path.
        self.refinement = Refinement(self.refine, self.act) if self.refine else NoRefinement()

    def config(self) -> dict:
        return {"width": self.width, "scale": self.scale, "dilations": list(self.dilations), "refine": self.refine}

    def low_resolution(self, y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The coefficients ``(a, b, c)`` at 1/scale resolution, and the hidden layers (the features)."""
        # ceil_mode: a partial window at the right/bottom edge averages its valid pixels only, so any
        # input size works with no shape arithmetic (which keeps the graph dynamic in every exporter).
        return self.from_pooled(F.avg_pool2d(torch.cat((y, ir), dim=1), self.scale, ceil_mode=True))

    def from_pooled(self, pooled: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:meth:`low_resolution` from the sources already pooled, ``(N, 2, h, w)`` (Y, ir): the convolutions alone,
        for a CPU path that pools the full-resolution planes itself (:meth:`cpu_split`)."""
        x = self.act(self.stem(pooled))
        features = [x]
        for conv in self.body:
            x = self.act(conv(x))
            features.append(x)
        return self.coefficients(x), features

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        low, features = self.low_resolution(y, ir)
        coefficients = F.interpolate(low, size=y.shape[-2:], mode="bilinear", align_corners=False)
        fused = coefficients[:, 0:1] * y + coefficients[:, 1:2] * ir + coefficients[:, 2:3]
        return self.refinement(y, ir, fused), features

    def cpu_split(self) -> CpuSplit | None:
        """Pooling, upsampling and the affine rule can leave the graph, unless the refinement follows them."""
        return None if self.refine else CpuSplit(self.scale, AffineHead(self).eval())
