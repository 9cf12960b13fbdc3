"""Common interface of every fusion network in sage_core."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CpuSplit:
    """How a model's work divides on a CPU: ``head`` maps the sources average-pooled by ``scale``,
    ``(N, 2, h, w)`` (Y, ir), to coefficients ``(N, 3, h, w)``; the output is those coefficients upsampled
    bilinearly (``align_corners=False``) and applied as ``a Y + b ir + c``. A backend then runs the head and
    does the full-resolution pooling and upsampling itself (``backends/affine_cpu.py``)."""

    scale: int
    head: nn.Module


class FusionModel(nn.Module):
    """A network mapping visible luminance and thermal ``(N,1,H,W)`` in [0, 1] to fused luminance.

    Subclasses set ``arch`` (the name stored in checkpoints), implement
    ``forward_features`` (output plus the intermediate feature maps that
    distillation uses) and ``config`` (the constructor keyword arguments, so a
    checkpoint rebuilds the model with no other information).
    """

    arch: str = ""
    #: True: the output is ``(N, 2, H, W)``, the fused luminance and a gain on the visible chroma that the colour
    #: pipeline applies (``models/chroma_fuse.py``); False: ``(N, 1, H, W)``, the luminance alone.
    chroma_output: bool = False

    def config(self) -> dict:
        raise NotImplementedError

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.forward_features(y, ir)[0]

    def cpu_split(self) -> CpuSplit | None:
        """The model's CPU split, when its output is exactly the one :class:`CpuSplit` describes; else None."""
        return None
