"""AffineChromaFuse: AffineFuse with a chroma output and an image-wide view, for the machines' stream.

The fused frame a detector likes best so far is the plain per-channel average of the visible image and the
thermal one (docs/downstream.md): it halves the visible chroma and gives a gentler tone than our fusion for
people. A luminance-only model cannot halve the colour. This one predicts, per low-resolution pixel, a fourth
coefficient beside AffineFuse's ``(a, b, c)``: a gain ``g`` on the visible chroma, so the published frame is

    Y' = a Y + b ir + c,    (Cr', Cb') = 0.5 + g (Cr - 0.5, Cb - 0.5)

and an image-wide branch (the hidden layers averaged over the frame, one 1x1 convolution, added back) lets it
set the tone of the whole frame (day or night, dark or bright) rather than of a neighbourhood only.

At ``(a, b, c, g) = (0.5, 0.5, 0, 0.5)``, its initial state, the frame is exactly ``(visible + thermal) / 2`` per
channel (thermal shown as gray has no chroma), so training starts from the plain average and any move away has
to be paid for by the loss.

The output is ``(N, 2, H, W)``: the fused luminance and the chroma gain (:attr:`chroma_output`); the colour
pipeline (``sage_core.fuser``) applies the gain. Convolutions, pooling, means, bilinear resizing and arithmetic
only: exports like AffineFuse.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sage_core.models.affine_fuse import AffineFuse, NoRefinement

#: The coefficients of the plain per-channel average: a, b, c, chroma gain.
AVERAGE = (0.5, 0.5, 0.0, 0.5)


class AffineChromaFuse(AffineFuse):
    """``(Y, ir) -> (F, g)``: fused luminance and a gain on the visible chroma; see the module docstring."""

    arch = "affine_chroma_fuse"
    chroma_output = True

    def __init__(self, width: int = 16, scale: int = 4, dilations: Sequence[int] = (1, 2, 4),
                 global_context: bool = True) -> None:
        super().__init__(width=width, scale=scale, dilations=dilations, refine=0)
        self.global_context = bool(global_context)
        self.coefficients = nn.Conv2d(self.width, 4, 3, padding=1)
        nn.init.zeros_(self.coefficients.weight)
        with torch.no_grad():
            self.coefficients.bias.copy_(torch.tensor(AVERAGE))
        # The image-wide view: the last hidden layer's mean over the frame, back into every pixel's features.
        self.context = nn.Conv2d(self.width, self.width, 1) if self.global_context else None
        self.refinement = NoRefinement()

    def config(self) -> dict:
        return {"width": self.width, "scale": self.scale, "dilations": list(self.dilations),
                "global_context": self.global_context}

    def from_pooled(self, pooled: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.act(self.stem(pooled))
        features = [x]
        for conv in self.body:
            x = self.act(conv(x))
            features.append(x)
        if self.context is not None:
            x = x + self.act(self.context(x.mean(dim=(2, 3), keepdim=True)))
        return self.coefficients(x), features

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        low, features = self.low_resolution(y, ir)
        coefficients = F.interpolate(low, size=y.shape[-2:], mode="bilinear", align_corners=False)
        fused = coefficients[:, 0:1] * y + coefficients[:, 1:2] * ir + coefficients[:, 2:3]
        return torch.cat((fused, coefficients[:, 3:4]), dim=1), features

    def cpu_split(self) -> None:
        """No split: the CPU path of ``backends/affine_cpu.py`` applies three coefficients, not the chroma gain."""
        return None
