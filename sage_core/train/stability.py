"""The stability term (``loss.stability``): the fused picture must not change when only the sensors' noise
or the camera's position by a few pixels changes. Label-free; docs/temporal.md says why.

A model that decides at low resolution (AffineFuse: coefficient maps at 1/4) turns small changes of its
inputs (sensor and compression noise, a shift of the scene against its pooling grid) into changes of its
decisions, which multiply the full-contrast visible image: on real video that is a good part of why the
fused stream is less steady than its visible input (benchmarks/bench_temporal_parts.py). Per step:

1. a second view of the batch: the same pixels cut ``dy, dx`` pixels further (both drawn in
   ``[-max_shift, max_shift]``, the same for both cameras: registered cameras move together) and
   independent Gaussian noise of standard deviation ``noise`` (in [0, 1] units) on each camera;
2. the fused frame of that view against the fused frame of the batch at the same pixels;
3. their difference low-passed by a ``pool`` x ``pool`` average, so that the noise the model passes
   through pixel by pixel (which the visible input carries too) averages away and what is left is the
   change of its decisions; compared on the inside of the view only (``margin`` pixels from its edges:
   a cut makes an image border where the camera has none);
4. ``weight`` times the mean square of that, in [0, 1] units: squared, so that the pooled remainder of the
   pass-through noise (its variance is (a^2 + b^2) noise^2 / pool^2 for ``F = a Y + b ir``, about 1/60 of the
   square of a decision change of 2 grey levels) puts next to no pressure on the model to lower its contrast,
   as a mean absolute value did (it cost 5-15 % of the contrast and the mutual information).

Any model works (the term only runs it twice); off (weight 0) in every shipped config but
``affine_fuse_steady.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sage_core.errors import ConfigError

KEY = "loss.stability"


@dataclass
class StabilityConfig:
    weight: float = 0.0  # 0: off
    max_shift: int = 3  # pixels, each axis
    noise: float = 0.008  # standard deviation of the added noise, [0, 1] units (about 2 grey levels)
    pool: int = 8  # low-pass window, pixels
    margin: int = 40  # pixels of the view's edges left out (about the model's receptive field)

    @property
    def enabled(self) -> bool:
        return bool(self.weight)


def check_stability(c: StabilityConfig, crop: list) -> None:
    """ConfigErrors naming the loss.stability key that is wrong."""
    def number(key: str, integer: bool, low: float) -> None:
        value = getattr(c, key)
        kind = int if integer else (int, float)
        if not isinstance(value, kind) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{KEY}.{key}: expected {'an integer' if integer else 'a number'} >= {low}, "
                              f"got {value!r}")

    number("weight", False, 0.0)
    if not c.enabled:
        return
    number("max_shift", True, 0)
    number("noise", False, 0.0)
    number("pool", True, 1)
    number("margin", True, 0)
    inside = min(int(v) for v in crop) - 2 * (c.max_shift + c.margin)
    if inside < c.pool:
        raise ConfigError(f"{KEY}: data.crop {crop} leaves {inside} pixels inside 2 x (max_shift + margin) = "
                          f"{2 * (c.max_shift + c.margin)}; expected at least pool ({c.pool}): a larger crop "
                          "or a smaller margin")


class StabilityTerm:
    """``loss(model, y, ir, fused)``: the term for one batch, ``fused = model(y, ir)`` already computed."""

    def __init__(self, config: StabilityConfig, seed: int = 0) -> None:
        self.config = config
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=self.generator))

    def loss(self, model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y: torch.Tensor,
             ir: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        c = self.config
        s = c.max_shift
        dy, dx = self._draw(-s, s), self._draw(-s, s)
        h, w = y.shape[-2:]
        rows, cols = slice(s + dy, h - s + dy), slice(s + dx, w - s + dx)  # the view: the same size each step

        def view(plane: torch.Tensor) -> torch.Tensor:
            cut = plane[..., rows, cols]
            noise = torch.randn(cut.shape, generator=self.generator).to(cut) * c.noise
            return (cut + noise).clamp(0.0, 1.0)

        moved = model(view(y), view(ir))
        change = moved - fused[..., rows, cols]
        m = c.margin
        inside = change[..., m:change.shape[-2] - m, m:change.shape[-1] - m]
        return c.weight * F.avg_pool2d(inside, c.pool, ceil_mode=True).square().mean()
