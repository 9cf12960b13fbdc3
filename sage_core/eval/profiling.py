"""Counting what a model costs: parameters and multiply-accumulates per output pixel (counted with hooks)."""

from __future__ import annotations

import torch
from torch import nn

from sage_core.models import FusionModel


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_pixel(model: FusionModel, height: int = 512, width: int = 640) -> float:
    """Multiply-accumulates of every convolution and linear layer in one forward pass, per input pixel.

    Counted by forward hooks on a real pass (so strides, pooling and resolution changes are
    exact); element-wise operations and resizing are not counted (a small fraction).
    """
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs, output) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            probe = torch.zeros(1, 1, height, width)
            model.eval()(probe, probe)
    finally:
        for handle in handles:
            handle.remove()
    return total / (height * width)
