"""The SAGE teacher ("main network"): SAM semantic patches + Semantic Persistent Attention, in a U shape.

Three branches run side by side: the image pair ``cat(Y, ir)``, the K semantic
patches of the thermal image and the K patches of the visible luminance. At each
of five stages (full, 1/2, 1/4 bottleneck, 1/2, full resolution), an SPA module
lets the patch branches cross-attend to the *persistent repository*, the keys and
values computed by the image branch, so the source information persists while
the semantics are injected; the merged patch features then run through a second
block whose keys and values feed the image branch's second block. Attention runs
on features max-pooled by ``pool`` (token count stays small); its output is
upsampled back and added as a residual. A conv decoder gives the fused luminance.

Built from method.md's description; no code of the authors is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sage_core.models.base import FusionModel


def _encoder(c_in: int, width: int) -> nn.Sequential:
    """c_in -> width/4 -> width/2 -> width, conv3x3 + LeakyReLU (2 -> 16 -> 32 -> 64 in the paper)."""
    widths = (max(width // 4, 1), max(width // 2, 1), width)
    layers, previous = [], c_in
    for w in widths:
        layers += [nn.Conv2d(previous, w, 3, padding=1), nn.LeakyReLU(0.2)]
        previous = w
    return nn.Sequential(*layers)


class GEGLU(nn.Module):
    """Feed-forward with a GELU-gated linear unit."""

    def __init__(self, dim: int, mult: int = 2) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, dim * mult * 2)
        self.proj_out = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * F.gelu(gate))


class AttentionBlock(nn.Module):
    """Pre-norm self-attention, optional cross-attention to given keys/values, GEGLU feed-forward.

    ``repository()`` exposes the keys/values this block offers to others (its normalised tokens).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_self, self.norm_cross, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = GEGLU(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        if memory is not None:
            x = x + self.cross_attn(self.norm_cross(x), memory, memory, need_weights=False)[0]
        return x + self.ff(self.norm_ff(x))


class SPAModule(nn.Module):
    """One stage of Semantic Persistent Attention over the three branches."""

    def __init__(self, dim: int, heads: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.image_first = AttentionBlock(dim, heads)
        self.ir_patches = AttentionBlock(dim, heads)
        self.vis_patches = AttentionBlock(dim, heads)
        self.merge = nn.Linear(2 * dim, dim)
        self.patch_block = AttentionBlock(dim, heads)
        self.image_second = AttentionBlock(dim, heads)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_max_pool2d(x, (max(1, x.shape[2] // self.pool), max(1, x.shape[3] // self.pool)))
        return pooled.flatten(2).transpose(1, 2), pooled.shape[2:]

    @staticmethod
    def _residual(x: torch.Tensor, tokens: torch.Tensor, grid: torch.Size) -> torch.Tensor:
        update = tokens.transpose(1, 2).reshape(x.shape[0], x.shape[1], *grid)
        return x + F.interpolate(update, size=x.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor, ir_p: torch.Tensor, vis_p: torch.Tensor):
        img_t, grid = self._tokens(image)
        ir_t, _ = self._tokens(ir_p)
        vis_t, _ = self._tokens(vis_p)
        img_t1 = self.image_first(img_t)
        repository = self.image_first.norm_ff(img_t1)  # the image branch's keys/values persist into the patches
        ir_t1 = self.ir_patches(ir_t, repository)
        vis_t1 = self.vis_patches(vis_t, repository)
        merged = self.patch_block(self.merge(torch.cat((ir_t1, vis_t1), dim=-1)))
        img_t2 = self.image_second(img_t1, self.patch_block.norm_ff(merged))
        return (self._residual(image, img_t2 - img_t, grid), self._residual(ir_p, ir_t1 - ir_t, grid),
                self._residual(vis_p, vis_t1 - vis_t, grid))


class _Branches(nn.Module):
    """The same layer applied to each of the three branches (own weights per branch)."""

    def __init__(self, make) -> None:
        super().__init__()
        self.image, self.ir, self.vis = make(), make(), make()

    def forward(self, image, ir_p, vis_p):
        return self.image(image), self.ir(ir_p), self.vis(vis_p)


class SPATeacher(FusionModel):
    """SAGE teacher: ``forward_features(y, ir, ir_patches, vis_patches)``; patches are ``(N, K, H, W)``.

    Without patches (plain ``forward(y, ir)``), each source stands in for all its
    K patches (the method's padding rule for images without masks).
    """

    arch = "spa_teacher"

    def __init__(self, width: int = 64, patches: int = 4, heads: int = 2, pool: int = 4) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.width, self.patches, self.heads, self.pool = width, patches, heads, pool
        self.enc_image = _encoder(2, width)
        self.enc_ir = _encoder(patches, width)
        self.enc_vis = _encoder(patches, width)
        self.stages = nn.ModuleList(SPAModule(width, heads, pool) for _ in range(5))
        conv = lambda c_in: lambda: nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.LeakyReLU(0.2))  # noqa: E731
        self.down = nn.ModuleList(_Branches(conv(width)) for _ in range(2))
        self.up = nn.ModuleList(_Branches(conv(2 * width)) for _ in range(2))
        self.decoder = nn.Sequential(nn.Conv2d(width, width // 2, 3, padding=1), nn.LeakyReLU(0.2),
                                     nn.Conv2d(width // 2, 1, 3, padding=1), nn.Sigmoid())

    def config(self) -> dict:
        return {"width": self.width, "patches": self.patches, "heads": self.heads, "pool": self.pool}

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor, ir_patches: torch.Tensor | None = None,
                         vis_patches: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if ir_patches is None:
            ir_patches = ir.expand(-1, self.patches, -1, -1)
        if vis_patches is None:
            vis_patches = y.expand(-1, self.patches, -1, -1)
        x = (self.enc_image(torch.cat((y, ir), 1)), self.enc_ir(ir_patches), self.enc_vis(vis_patches))
        features, skips = [], []
        for stage in range(5):
            x = self.stages[stage](*x)
            features.append(x[0])
            if stage < 2:  # down: conv, then max-pool 2
                skips.append(x)
                x = tuple(F.max_pool2d(t, 2) for t in self.down[stage](*x))
            elif stage < 4:  # up: bilinear x2 to the skip's size, concat the skip, conv
                skip = skips.pop()
                up = [F.interpolate(t, size=s.shape[2:], mode="bilinear", align_corners=False) for t, s in zip(x, skip)]
                x = self.up[stage - 2](*(torch.cat((u, s), 1) for u, s in zip(up, skip)))
        return self.decoder(x[0]), features
