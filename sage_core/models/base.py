"""Common interface of every fusion network in sage_core."""

from __future__ import annotations

import torch
from torch import nn


class FusionModel(nn.Module):
    """A network mapping visible luminance and thermal ``(N,1,H,W)`` in [0, 1] to fused luminance.

    Subclasses set ``arch`` (the name stored in checkpoints), implement
    ``forward_features`` (output plus the intermediate feature maps that
    distillation uses) and ``config`` (the constructor keyword arguments, so a
    checkpoint rebuilds the model with no other information).
    """

    arch: str = ""

    def config(self) -> dict:
        raise NotImplementedError

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.forward_features(y, ir)[0]
