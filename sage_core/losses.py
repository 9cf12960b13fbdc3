"""Unsupervised fusion losses (method.md): intensity terms and the max-gradient term.

All images are ``(N, 1, H, W)`` tensors in [0, 1]: ``fused``, visible luminance
``y`` and thermal ``ir``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|gx| + |gy| with Sobel kernels, reflect padding (no false edges at the border)."""
    kernels = torch.stack((_SOBEL_X, _SOBEL_X.t()))[:, None].to(x)
    grads = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernels)
    return grads.abs().sum(dim=1, keepdim=True)


def max_gradient_loss(fused: torch.Tensor, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """L1(|grad F|, max(|grad Y|, |grad ir|)): keep the stronger edge of either source."""
    target = torch.maximum(sobel_magnitude(y), sobel_magnitude(ir))
    return F.l1_loss(sobel_magnitude(fused), target)


@dataclass
class FusionLossWeights:
    """Weights of the unsupervised fusion loss.

    The defaults are the SAGE teacher loss without segmentation:
    ``MSE(F, Y) + MSE(F, ir) + 2 L_grad``. ``max_intensity`` adds
    ``L1(F, max(Y, ir))``, which keeps warm targets bright instead of averaged.
    """

    mse_vis: float = 1.0
    mse_ir: float = 1.0
    max_intensity: float = 0.0
    grad: float = 2.0


def fusion_loss(fused: torch.Tensor, y: torch.Tensor, ir: torch.Tensor,
                weights: FusionLossWeights | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the fusion terms, and each term's value for logging."""
    w = weights or FusionLossWeights()
    terms = {
        "mse_vis": F.mse_loss(fused, y),
        "mse_ir": F.mse_loss(fused, ir),
        "max_intensity": F.l1_loss(fused, torch.maximum(y, ir)),
        "grad": max_gradient_loss(fused, y, ir),
    }
    total = sum(getattr(w, name) * value for name, value in terms.items() if getattr(w, name))
    return total, {name: float(value.detach()) for name, value in terms.items()}
