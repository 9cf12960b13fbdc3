"""The attention block of the SPA teacher: a latent-diffusion style spatial transformer (method.md).

GroupNorm, 1x1 projection in, one transformer block (self-attention, cross-attention, GEGLU
feed-forward), 1x1 projection out (zero-initialised, so a fresh block is the identity), plus the
block's input. The cross-attention can be handed a :class:`Context` (keys and values) from another
block; it runs them through its own key/value projections and returns the projected pair, so a
chain of blocks can hand the same source on (the SPA *persistent repository*). Without a context
it attends to its own normalised tokens, as a self-attention would.

Written from method.md's description; no code of the authors is used.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Context(NamedTuple):
    """Keys and values handed from one block's cross-attention to another's: ``(N, L, C)`` tokens."""

    keys: torch.Tensor
    values: torch.Tensor


class Attention(nn.Module):
    """Multi-head attention with separate bias-free q/k/v projections; returns the k/v it used."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        return x.reshape(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, Context]:
        k, v = self.to_k(keys), self.to_v(values)
        out = F.scaled_dot_product_attention(self._split(self.to_q(x)), self._split(k), self._split(v))
        return self.to_out(out.transpose(1, 2).reshape(x.shape)), Context(k, v)


class GEGLU(nn.Module):
    """Feed-forward with a GELU-gated linear unit (hidden width ``mult * dim``)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, dim * mult * 2)
        self.proj_out = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(value * F.gelu(gate))


class SpatialTransformer(nn.Module):
    """``(N, C, h, w)`` map [+ a Context] -> (map of the same shape, the Context its cross-attention used)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} must be divisible by heads {heads}")
        # 32 groups at width 64 (as released); at least 2 channels a group, so one-token maps still normalise.
        self.norm = nn.GroupNorm(math.gcd(32, max(dim // 2, 1)), dim, eps=1e-6)
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.norm_self, self.norm_cross, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.ff = GEGLU(dim)
        self.proj_out = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: Context | None = None) -> tuple[torch.Tensor, Context]:
        n, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        normed = self.norm_self(tokens)
        tokens = tokens + self.self_attn(normed, normed, normed)[0]
        normed = self.norm_cross(tokens)
        keys, values = (normed, normed) if context is None else context
        update, used = self.cross_attn(normed, keys, values)
        tokens = tokens + update
        tokens = tokens + self.ff(self.norm_ff(tokens))
        return x + self.proj_out(tokens.transpose(1, 2).reshape(n, c, h, w)), used
