"""LiteFuse: our first small fusion network, trained on unsupervised fusion losses.

A plain stack of 3x3 convolutions at full resolution with growing dilation
(receptive field 19 px with the defaults) and a sigmoid head. About 7k
multiply-accumulates per pixel with width 16, a ninth of the released SAGE
student, with no normalisation layers, so it exports to any backend unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sage_core.models.base import FusionModel


class LiteFuse(FusionModel):
    """``(Y, ir) -> fused luminance in [0, 1]``; features are the hidden layers' outputs."""

    arch = "lite_fuse"

    def __init__(self, width: int = 16, dilations: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        self.width = int(width)
        self.dilations = tuple(int(d) for d in dilations)
        self.stem = nn.Conv2d(2, self.width, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Conv2d(self.width, self.width, 3, padding=d, dilation=d) for d in self.dilations
        )
        self.head = nn.Conv2d(self.width, 1, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)

    def config(self) -> dict:
        return {"width": self.width, "dilations": list(self.dilations)}

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.act(self.stem(torch.cat((y, ir), dim=1)))
        features = [x]
        for conv in self.body:
            x = self.act(conv(x))
            features.append(x)
        return torch.sigmoid(self.head(x)), features
