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

def teacher_loss(fused: torch.Tensor, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """``MSE(F, Y) + MSE(F, ir) + 2 L_grad``; the segmentation term is :mod:`sage_core.train.segmentation`'s."""
    return F.mse_loss(fused, y) + F.mse_loss(fused, ir) + 2.0 * max_gradient_loss(fused, y, ir)


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

    Only for students whose feature maps do not match the teacher's 32-channel heads map for map
    (ours; the released student matches and needs none). Student map ``i`` of ``n`` is paired with
    teacher map ``round(i * (m - 1) / (n - 1))`` of ``m``.
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


def features_match(student_shapes: list[torch.Size], teacher_shapes: list[torch.Size]) -> bool:
    """True when the student's feature maps pair one to one with the teacher's heads (no projection)."""
    return len(student_shapes) == len(teacher_shapes) and all(
        s[1:] == t[1:] for s, t in zip(student_shapes, teacher_shapes))


def feature_loss(student_features: list[torch.Tensor], teacher_features: list[torch.Tensor],
                 projections: FeatureProjections | None = None) -> torch.Tensor:
    """Sum over the feature pairs of ``1 - cos(student_i, teacher_i)``, the cosine taken over each
    whole flattened map (one number per sample, averaged over the batch), as released.

    ``projections`` maps the teacher's heads to a student whose maps do not match them.
    """
    if projections is not None:
        teacher_features = projections(teacher_features, [f.shape[2:] for f in student_features])
    return sum(1.0 - F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1).mean()
               for s, t in zip(student_features, teacher_features))


def semantic_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """D(a, b): sum over feature maps of the L2 norm (whole tensor) of the difference of the
    instance-normalised features."""
    return sum(torch.linalg.vector_norm(F.instance_norm(x) - F.instance_norm(y)) for x, y in zip(a, b))


def contrastive_loss(fused: torch.Tensor, reference: torch.Tensor, sources: list[torch.Tensor],
                     patches: list[torch.Tensor], phi: Callable[[torch.Tensor], list[torch.Tensor]]) -> torch.Tensor:
    """Sum over the K semantic patches ``P`` of each modality ``S``: ``D(R P, F P) / (D(S P, F P) + 1e-7)``.

    ``patches[i]`` is ``(N, K, H, W)``: the intensity patches ``S * m`` the teacher gets (not binary
    masks). Pulls the student towards the teacher (positive) and away from the raw source
    (negative) inside each semantic region. A patch empty across the batch adds nothing. Unscaled:
    the released 1/3000 is ``TripletWeights.contrastive``.
    """
    total = fused.new_zeros(())
    for source, patch in zip(sources, patches):
        n, k = patch.shape[:2]
        stacked = torch.stack((fused, reference, source))  # (3, N, 1, H, W)
        # All K patches of the three images in one pass: (K * 3 * N, 1, H, W); instance norm is per sample.
        masked = (stacked[None] * patch.transpose(0, 1)[:, None, :, None]).flatten(0, 2)
        feats = [f.reshape(k, 3, n, *f.shape[1:]) for f in phi(masked)]
        for slot in range(k):
            if not torch.count_nonzero(patch[:, slot]):
                continue
            f_p, r_p, s_p = ([f[slot, role] for f in feats] for role in range(3))
            total = total + semantic_distance(r_p, f_p) / (semantic_distance(s_p, f_p) + 1e-7)
    return total


def triplet_terms(fused: torch.Tensor, reference: torch.Tensor | None, y: torch.Tensor, ir: torch.Tensor,
                  patches: tuple[torch.Tensor, torch.Tensor] | None,
                  phi: Callable[[torch.Tensor], list[torch.Tensor]] | None,
                  w: TripletWeights) -> dict[str, torch.Tensor]:
    """The released student loss without its feature term: ``pixel`` (3 L_fuse + 3 L_grad) and, with SAM
    features and patches ``(ir patches, vis patches)``, ``contrastive`` (already times ``w.contrastive``).

    The teacher's follow term is the same with the roles swapped (teacher output as ``fused``).
    """
    terms = {"pixel": pixel_loss(fused, y, ir, reference, w)}
    if phi is not None and patches is not None and reference is not None and w.contrastive:
        terms["contrastive"] = w.contrastive * contrastive_loss(fused, reference, [ir, y], list(patches), phi)
    return terms
