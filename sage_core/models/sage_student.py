"""The student network released with SAGE (method.md, "Student"), written from its description.

A three-level U-Net of conv3x3 -> BatchNorm -> LeakyReLU triples, 32 channels,
bilinear upsampling with skip concatenation, and a tanh decoder to one channel.
Module and index names follow the released checkpoint so that its ``state_dict``
loads without renaming (``module1.0.weight``, ``adjust_channels4.0.weight``...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sage_core.models.base import FusionModel


def _conv_bn_act(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.01),
    ]


def _triple(c_in: int, width: int) -> nn.Sequential:
    """Three conv3x3-BN-LeakyReLU layers; indices 0..8 as in the released keys."""
    return nn.Sequential(
        *_conv_bn_act(c_in, width, 3), *_conv_bn_act(width, width, 3), *_conv_bn_act(width, width, 3)
    )


class SageStudent(FusionModel):
    """Released SAGE student: ``(Y, ir) -> (fused luminance, [5 feature maps])``."""

    arch = "sage_student"

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.module1 = _triple(2, width)
        self.module2 = _triple(width, width)
        self.module3 = _triple(width, width)
        self.adjust_channels4 = nn.Sequential(*_conv_bn_act(2 * width, width, 1))
        self.module4 = _triple(width, width)
        self.adjust_channels5 = nn.Sequential(*_conv_bn_act(2 * width, width, 1))
        self.module5 = _triple(width, width)
        self.final_decoder = nn.Sequential(nn.Conv2d(width, 1, 3, padding=1), nn.Tanh())

    def config(self) -> dict:
        return {"width": self.width}

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f1 = self.module1(torch.cat((y, ir), dim=1))
        f2 = self.module2(F.max_pool2d(f1, 2))
        f3 = self.module3(F.max_pool2d(f2, 2))
        up3 = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        f4 = self.module4(self.adjust_channels4(torch.cat((up3, f2), dim=1)))
        up4 = F.interpolate(f4, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        f5 = self.module5(self.adjust_channels5(torch.cat((up4, f1), dim=1)))
        return self.final_decoder(f5), [f1, f2, f3, f4, f5]
