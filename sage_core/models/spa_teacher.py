"""The SAGE teacher ("main network"): SAM semantic patches + Semantic Persistent Attention, in a U shape.

Three branches run side by side: the image pair ``cat(Y, ir)``, the K semantic patches of the
thermal image and the K patches of the visible luminance. One SPA stage (one set of weights) is
applied five times in a U (full, 1/2, 1/4 bottleneck, 1/2, full feature resolution). Inside a
stage the image branch only ever attends to image-derived keys and values (the *persistent
repository*); the patch branches attend to the repository; semantics reach the image path only by
concatenation, ``cat(img, img_in, img2, mask)``, and the convolutions after it. Five 1x1 heads
compress the stage outputs to the teacher features of the feature distillation loss.

With ``width`` 64 and K = 4 this has the released teacher's structure and its 2,639,505 parameters
(method.md); smaller widths scale every layer alike (smoke runs). Written from method.md's
description; no code of the authors is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sage_core.models.base import FusionModel
from sage_core.models.spa_attention import SpatialTransformer


def _conv(c_in: int, c_out: int, act: bool = True) -> list[nn.Module]:
    """conv3x3 (+ LeakyReLU with PyTorch's default slope, as released)."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1)] + ([nn.LeakyReLU()] if act else [])


def _chain(widths: list[int]) -> nn.Sequential:
    """conv3x3 + LeakyReLU between consecutive widths (LeakyReLU after the last one too)."""
    return nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in _conv(a, b)])


def _resize(x: torch.Tensor, size: torch.Size, align_corners: bool = False) -> torch.Tensor:
    return x if x.shape[2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


class SPAStage(nn.Module):
    """One stage of Semantic Persistent Attention; ``(img, ir, vis)`` at one resolution ->
    ``(cat(img, img_in, img2, mask)`` with 4 x width channels, ir, vis) at that resolution."""

    def __init__(self, width: int, heads: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.image_first = SpatialTransformer(width, heads)
        self.ir_block = SpatialTransformer(width, heads)
        self.vis_block = SpatialTransformer(width, heads)
        self.mask_block = SpatialTransformer(width, heads)
        self.image_second = SpatialTransformer(width, heads)
        self.middle_image, self.middle_ir, self.middle_vis, self.middle_mask = (
            nn.Sequential(*_conv(2 * width, width)) for _ in range(4))

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        # Attention on max-pooled maps keeps the token count small; maps under pool pixels pool to one token.
        if min(x.shape[2:]) >= self.pool:
            return F.max_pool2d(x, self.pool)
        return F.adaptive_max_pool2d(x, 1)

    def forward(self, image: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img_in, ir_in, vis_in = self._pool(image), self._pool(ir), self._pool(vis)
        img, repository = self.image_first(img_in)  # keys/values from image tokens only
        ir_t, _ = self.ir_block(ir_in, repository)
        vis_t, _ = self.vis_block(vis_in, repository)
        ir_m = self.middle_ir(torch.cat((ir_t, ir_in), 1)) + ir_t
        vis_m = self.middle_vis(torch.cat((vis_t, vis_in), 1)) + vis_t
        mask = self.middle_mask(torch.cat((ir_m, vis_m), 1)) + ir_m + vis_m + ir_t + vis_t
        img2 = self.middle_image(torch.cat((img, img_in), 1)) + img
        # The merged-mask block hands on the repository re-projected, still image-derived: the image
        # branch never attends to patch tokens (the source information persists).
        mask, reprojected = self.mask_block(mask, repository)
        img, _ = self.image_second(img2, reprojected)
        out = torch.cat((img, img_in, img2, mask), 1)
        return _resize(out, image.shape[2:]), _resize(ir_m, ir.shape[2:]), _resize(vis_m, vis.shape[2:])


class SPATeacher(FusionModel):
    """SAGE teacher: ``forward_features(y, ir, ir_patches, vis_patches)``; patches are ``(N, K, H, W)``.

    Returns the fused luminance and five ``width // 2``-channel features (32 at width 64) at full,
    1/2, 1/4, 1/2 and full resolution. Without patches (plain ``forward(y, ir)``), each source
    stands in for all its K patches (the method's padding rule for images without masks).
    """

    arch = "spa_teacher"

    def __init__(self, width: int = 64, patches: int = 4, heads: int = 2, pool: int = 4) -> None:
        super().__init__()
        if width % 4 or width % heads:
            raise ValueError(f"width {width} must be divisible by 4 and by heads {heads}")
        self.width, self.patches, self.heads, self.pool = width, patches, heads, pool
        w, q, h = width, width // 4, width // 2
        self.enc_image = nn.ModuleList((_chain([2, q, h]), _chain([h, w])))  # img0 after the first
        self.enc_ir = nn.ModuleList((_chain([patches, q, h]), _chain([h, w])))
        # As released, the visible patch encoder's last conv has no activation.
        self.enc_vis = nn.ModuleList((_chain([patches, q, h]), nn.Sequential(*_conv(h, w, act=False))))
        self.stage = SPAStage(w, heads, pool)  # one module, applied five times
        self.down = nn.ModuleList(nn.Conv2d(4 * w, w, 3, padding=1) for _ in range(2))
        self.up = nn.ModuleList(nn.Sequential(*_conv(4 * w, w)) for _ in range(2))
        self.heads_out = nn.ModuleList(nn.Conv2d(4 * w, h, 1) for _ in range(5))
        self.decoder_wide = _chain([5 * w, 4 * w, 2 * w, w])
        self.decoder_fine = _chain([w + h, w, h, q, 1])

    def config(self) -> dict:
        return {"width": self.width, "patches": self.patches, "heads": self.heads, "pool": self.pool}

    def _encode(self, y, ir, ir_patches, vis_patches):
        img0 = self.enc_image[0](torch.cat((y, ir), 1))
        return (img0, self.enc_image[1](img0), self.enc_ir[1](self.enc_ir[0](ir_patches)),
                self.enc_vis[1](self.enc_vis[0](vis_patches)))

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor, ir_patches: torch.Tensor | None = None,
                         vis_patches: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if ir_patches is None:
            ir_patches = ir.expand(-1, self.patches, -1, -1)
        if vis_patches is None:
            vis_patches = y.expand(-1, self.patches, -1, -1)
        img0, img, ir_p, vis_p = self._encode(y, ir, ir_patches, vis_patches)
        first = img
        outs, skips = [], []
        for level in range(2):  # down: stage, conv 4w -> w, max-pool 2, LeakyReLU
            out, ir_p, vis_p = self.stage(img, ir_p, vis_p)
            outs.append(out)
            skips.append(out)
            img = F.leaky_relu(F.max_pool2d(self.down[level](out), 2))
            ir_p, vis_p = F.max_pool2d(ir_p, 2), F.max_pool2d(vis_p, 2)
        for level in range(2):  # up: stage, bilinear to the skip's size, add the skip, conv 4w -> w
            out, ir_p, vis_p = self.stage(img, ir_p, vis_p)
            outs.append(out)
            skip = skips.pop()
            img = self.up[level](_resize(out, skip.shape[2:], True) + skip)
            ir_p, vis_p = _resize(ir_p, skip.shape[2:], True), _resize(vis_p, skip.shape[2:], True)
        out = self.stage(img, ir_p, vis_p)[0]
        outs.append(out)
        fused = self.decoder_fine(torch.cat((self.decoder_wide(torch.cat((out, first), 1)), img0), 1))
        return fused, [head(o) for head, o in zip(self.heads_out, outs)]
