"""Fusion losses (method.md): the SAGE teacher loss and the student's triplet loss.

All images are ``(N, 1, H, W)`` tensors in [0, 1]: ``fused``, visible luminance
``y`` and thermal ``ir``.
"""

from __future__ import annotations

from collections.abc import Callable
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


# ----- SAGE teacher and student (triplet) losses -------------------------------------------------------

def teacher_loss(fused: torch.Tensor, y: torch.Tensor, ir: torch.Tensor,
                 segmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 segmentation_weight: float = 0.3) -> torch.Tensor:
    """``MSE(F, Y) + MSE(F, ir) + 2 L_grad`` (+ a pluggable segmentation term, off by default)."""
    loss = F.mse_loss(fused, y) + F.mse_loss(fused, ir) + 2.0 * max_gradient_loss(fused, y, ir)
    if segmentation is not None:
        loss = loss + segmentation_weight * segmentation(fused)
    return loss


@dataclass
class TripletWeights:
    """Weights of the student's triplet loss; defaults are the released code's (method.md)."""

    feature: float = 0.3
    fuse: float = 3.0  # weight of L_fuse = 3 MSE(F, Y) + 2 MSE(F, ir) + 4 MSE(F, R)
    grad: float = 3.0  # weight of L_grad = 9 L_grad(F; Y, ir) + 3 L1(|grad F|, |grad R|)
    mse_vis: float = 3.0
    mse_ir: float = 2.0
    mse_ref: float = 4.0
    grad_sources: float = 9.0
    grad_ref: float = 3.0
    max_intensity: float = 0.0  # ours, off in the paper: L1(F, max(Y, ir)) inside L_fuse keeps warm targets bright
    contrastive: float = 1.0 / 3000.0


def pixel_loss(fused: torch.Tensor, y: torch.Tensor, ir: torch.Tensor, reference: torch.Tensor | None,
               w: TripletWeights) -> torch.Tensor:
    """``w.fuse * L_fuse + w.grad * L_grad``; without a reference the teacher-following terms drop out."""
    l_fuse = w.mse_vis * F.mse_loss(fused, y) + w.mse_ir * F.mse_loss(fused, ir)
    if w.max_intensity:
        l_fuse = l_fuse + w.max_intensity * F.l1_loss(fused, torch.maximum(y, ir))
    l_grad = w.grad_sources * max_gradient_loss(fused, y, ir)
    if reference is not None:
        l_fuse = l_fuse + w.mse_ref * F.mse_loss(fused, reference)
        l_grad = l_grad + w.grad_ref * F.l1_loss(sobel_magnitude(fused), sobel_magnitude(reference))
    return w.fuse * l_fuse + w.grad * l_grad


class FeatureProjections(torch.nn.Module):
    """1x1 convolutions taking teacher features to the student's widths, one per student feature map.

    Student map ``i`` of ``n`` is paired with teacher map ``round(i * (m - 1) / (n - 1))`` of ``m``,
    so students with fewer (or more) maps than the teacher still get a spread of targets.
    """

    def __init__(self, teacher_channels: list[int], student_channels: list[int]) -> None:
        super().__init__()
        n, m = len(student_channels), len(teacher_channels)
        self.pairs = [round(i * (m - 1) / max(n - 1, 1)) for i in range(n)]
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(teacher_channels[t], c, 1) for t, c in zip(self.pairs, student_channels))

    def forward(self, teacher_features: list[torch.Tensor], sizes: list[torch.Size]) -> list[torch.Tensor]:
        out = []
        for conv, t, size in zip(self.convs, self.pairs, sizes):
            feature = conv(teacher_features[t])
            if feature.shape[2:] != size:
                feature = F.interpolate(feature, size=size, mode="bilinear", align_corners=False)
            out.append(feature)
        return out


def feature_loss(student_features: list[torch.Tensor], teacher_features: list[torch.Tensor],
                 projections: FeatureProjections) -> torch.Tensor:
    """Sum over the student's maps of ``1 - cos(student_i, proj_i(teacher_i))``, cosine over channels."""
    projected = projections(teacher_features, [f.shape[2:] for f in student_features])
    return sum((1.0 - F.cosine_similarity(s, t, dim=1)).mean() for s, t in zip(student_features, projected))


def _normalised_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """RMS distance of instance-normalised feature maps, per sample."""
    a, b = F.instance_norm(a), F.instance_norm(b)
    return (a - b).pow(2).flatten(1).mean(1).add(1e-12).sqrt()


def contrastive_loss(fused: torch.Tensor, reference: torch.Tensor, sources: list[torch.Tensor],
                     masks: list[torch.Tensor], phi: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """For each mask ``m`` of each modality ``S``: ``D(phi(R m), phi(F m)) / D(phi(S m), phi(F m))``.

    Pulls the student towards the teacher (positive) and away from the raw source
    (negative) inside each semantic region. ``masks[i]`` is ``(N, K, H, W)`` for ``sources[i]``.
    """
    total = fused.new_zeros(())
    for source, mask in zip(sources, masks):
        n, k = mask.shape[:2]
        flat = mask.reshape(n * k, 1, *mask.shape[2:])
        # Every image repeated once per mask, then masked: (N * K, 1, H, W).
        f_feat, r_feat, s_feat = (phi(x.repeat_interleave(k, dim=0) * flat) for x in (fused, reference, source))
        total = total + (_normalised_distance(r_feat, f_feat) / (_normalised_distance(s_feat, f_feat) + 1e-6)).mean()
    return total
