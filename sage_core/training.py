"""Training loop for fusion networks on unsupervised fusion losses.

Kept free of any command-line handling so that ``training/`` scripts stay thin
and the distillation work can reuse the sampler and the loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.data import dataset_pairs, read_pair
from sage_core.losses import FusionLossWeights, fusion_loss
from sage_core.models import FusionModel


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_fusion`."""

    steps: int = 1500
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-3
    lr_min: float = 1e-5
    seed: int = 0
    loss: FusionLossWeights = field(default_factory=FusionLossWeights)

    def to_dict(self) -> dict:
        return asdict(self)


def load_luma_pairs(folders: Iterable[str | Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """All pairs of the dataset folders as (visible luminance, thermal) float32 arrays in [0, 1]."""
    pairs = []
    for folder in folders:
        for pair in tqdm(dataset_pairs(folder), desc=f"loading {Path(folder).name}", leave=False):
            ir, vis = read_pair(pair)
            pairs.append((vis_to_luma_chroma(vis).y, ir_to_gray(ir)))
    return pairs


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


def train_fusion(model: FusionModel, pairs: list[tuple[np.ndarray, np.ndarray]], config: TrainConfig,
                 progress: bool = True) -> dict:
    """Adam with cosine decay on the fusion loss; returns a small history for the model card."""
    torch.manual_seed(config.seed)
    sampler = CropSampler(pairs, config.crop, config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.lr_min)
    model.train()
    started = time.perf_counter()
    smoothed = math.nan
    history: list[dict] = []
    bar = tqdm(range(config.steps), desc="training", disable=not progress)
    for step in bar:
        y, ir = sampler.sample(config.batch_size)
        loss, terms = fusion_loss(model(y, ir), y, ir, config.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        value = float(loss.detach())
        smoothed = value if math.isnan(smoothed) else 0.95 * smoothed + 0.05 * value
        bar.set_postfix(loss=f"{smoothed:.4f}")
        if step % 100 == 0 or step == config.steps - 1:
            history.append({"step": step, "loss": smoothed, **terms})
    model.eval()
    return {"seconds": time.perf_counter() - started, "history": history, "final_loss": smoothed}
