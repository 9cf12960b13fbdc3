"""Random crops of the in-memory training planes, and the batch one training step sees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sage_core.train.data import unpack_masks

#: Labelled pixels remembered per image for crops around labelled regions (a sample is plenty).
_FOCUS_POINTS = 4096


class CropSampler:
    """Random crops with horizontal flips from in-memory images, as ``(N, 1, h, w)`` tensors by plane name.

    Each item maps names to aligned H x W planes (luminance, thermal, packed SAM masks, labels...);
    every plane gets the same crop and flip. With ``focus`` (a plane name, e.g. ``labels``), each crop
    contains a pixel where that plane is labelled (``0 < value != ignore``), when the image has any.
    ``indices`` restricts sampling to a shard of the items (distributed training).
    """

    def __init__(self, items: list[dict[str, np.ndarray]], crop: int | tuple[int, int], seed: int = 0,
                 indices: list[int] | None = None, focus: str | None = None, ignore: int = 255) -> None:
        self.crop_h, self.crop_w = (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
        small = [i for i, planes in enumerate(items)
                 if planes["y"].shape[0] < self.crop_h or planes["y"].shape[1] < self.crop_w]
        if small:
            h, w = items[small[0]]["y"].shape
            raise ValueError(f"crop {self.crop_h}x{self.crop_w} (H x W) is larger than {len(small)} training "
                             f"image(s), the first of size {h}x{w}")
        self.items = items
        self.indices = list(range(len(items))) if indices is None else list(indices)
        if not self.indices:
            raise ValueError("no training images to sample from (empty shard)")
        self.rng = np.random.default_rng(seed)
        self.focus = [self._labelled_points(planes[focus], ignore) if focus else None for planes in items]

    def _labelled_points(self, plane: np.ndarray, ignore: int) -> np.ndarray:
        points = np.flatnonzero((plane > 0) & (plane != ignore))
        if len(points) > _FOCUS_POINTS:
            points = self.rng.choice(points, _FOCUS_POINTS, replace=False)
        return points

    def _window(self, index: int, height: int, width: int) -> tuple[int, int]:
        """Top-left corner: uniform, or among the windows holding one random labelled pixel."""
        points = self.focus[index]
        if points is None or not len(points):
            return self.rng.integers(0, height - self.crop_h + 1), self.rng.integers(0, width - self.crop_w + 1)
        row, col = divmod(int(self.rng.choice(points)), width)
        top_lo, left_lo = max(0, row - self.crop_h + 1), max(0, col - self.crop_w + 1)
        top = self.rng.integers(top_lo, min(row, height - self.crop_h) + 1)
        left = self.rng.integers(left_lo, min(col, width - self.crop_w) + 1)
        return top, left

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        names = list(self.items[self.indices[0]])
        crops: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for position in self.rng.integers(0, len(self.indices), batch_size):
            index = self.indices[position]
            planes = self.items[index]
            top, left = self._window(index, *planes["y"].shape)
            flip = self.rng.random() < 0.5
            for name in names:
                window = planes[name][top:top + self.crop_h, left:left + self.crop_w]
                crops[name].append(window[:, ::-1] if flip else window)
        return {name: torch.from_numpy(np.ascontiguousarray(np.stack(c)[:, None])) for name, c in crops.items()}


@dataclass
class Batch:
    """One step's crops on the training device; parts a run does not use are None.

    ``ir_patches``/``vis_patches`` are the K semantic patches ``S * m`` (N, K, h, w), what the
    teacher and the contrastive loss get; ``labels`` are per-pixel class indices (N, h, w).
    """

    y: torch.Tensor
    ir: torch.Tensor
    ir_patches: torch.Tensor | None = None
    vis_patches: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    cr: torch.Tensor | None = None
    cb: torch.Tensor | None = None
    labels: torch.Tensor | None = None


def make_batch(crops: dict[str, torch.Tensor], patches: int, planes: int, device: torch.device) -> Batch:
    """Sampled crops -> a Batch: masks unpacked to K per modality and turned into semantic patches."""
    y, ir = crops["y"].to(device), crops["ir"].to(device)
    batch = Batch(y, ir)
    if "ir_masks" in crops:
        batch.ir_patches = ir * unpack_masks(crops["ir_masks"], patches, planes).to(device)
        batch.vis_patches = y * unpack_masks(crops["vis_masks"], patches, planes).to(device)
    for name in ("reference", "cr", "cb"):
        if name in crops:
            setattr(batch, name, crops[name].to(device))
    if "labels" in crops:
        batch.labels = crops["labels"][:, 0].long().to(device)
    return batch
