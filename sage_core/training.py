"""Training data sampling shared by the training tools: random crops with flips from in-memory images.

The training loop itself is :class:`sage_core.distillation.Distiller` (bi-level SAGE distillation,
a frozen teacher, or the fusion losses alone with ``teacher.kind: none``).
"""

from __future__ import annotations

import numpy as np
import torch


class CropSampler:
    """Random crops with horizontal flips from in-memory images, as ``(N, 1, h, w)`` tensors.

    Each item is a tuple of aligned H x W planes (luminance, thermal, and any extra
    planes such as packed SAM masks); every plane gets the same crop and flip.
    ``indices`` restricts sampling to a shard of the items (distributed training).
    """

    def __init__(self, items: list[tuple[np.ndarray, ...]], crop: int | tuple[int, int], seed: int = 0,
                 indices: list[int] | None = None) -> None:
        self.crop_h, self.crop_w = (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
        small = [i for i, planes in enumerate(items)
                 if planes[0].shape[0] < self.crop_h or planes[0].shape[1] < self.crop_w]
        if small:
            h, w = items[small[0]][0].shape
            raise ValueError(f"crop {self.crop_h}x{self.crop_w} (H x W) is larger than {len(small)} training "
                             f"image(s), the first of size {h}x{w}")
        self.items = items
        self.indices = list(range(len(items))) if indices is None else list(indices)
        if not self.indices:
            raise ValueError("no training images to sample from (empty shard)")
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        crops: list[list[np.ndarray]] = [[] for _ in self.items[self.indices[0]]]
        for position in self.rng.integers(0, len(self.indices), batch_size):
            planes = self.items[self.indices[position]]
            height, width = planes[0].shape
            top = self.rng.integers(0, height - self.crop_h + 1)
            left = self.rng.integers(0, width - self.crop_w + 1)
            flip = self.rng.random() < 0.5
            for out, plane in zip(crops, planes):
                window = plane[top:top + self.crop_h, left:left + self.crop_w]
                out.append(window[:, ::-1] if flip else window)
        return tuple(torch.from_numpy(np.ascontiguousarray(np.stack(c)[:, None])) for c in crops)
