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
    """Random crops with horizontal flips from in-memory (Y, ir) pairs, as ``(N, 1, c, c)`` tensors."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], crop: int, seed: int = 0) -> None:
        small = [i for i, (y, _) in enumerate(pairs) if min(y.shape) < crop]
        if small:
            raise ValueError(f"{len(small)} training images are smaller than the crop size {crop}")
        self.pairs, self.crop = pairs, crop
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        ys, irs = [], []
        for index in self.rng.integers(0, len(self.pairs), batch_size):
            y, ir = self.pairs[index]
            top = self.rng.integers(0, y.shape[0] - self.crop + 1)
            left = self.rng.integers(0, y.shape[1] - self.crop + 1)
            window = (slice(top, top + self.crop), slice(left, left + self.crop))
            y_crop, ir_crop = y[window], ir[window]
            if self.rng.random() < 0.5:
                y_crop, ir_crop = y_crop[:, ::-1], ir_crop[:, ::-1]
            ys.append(y_crop)
            irs.append(ir_crop)
        as_tensor = lambda crops: torch.from_numpy(np.ascontiguousarray(np.stack(crops)[:, None]))  # noqa: E731
        return as_tensor(ys), as_tensor(irs)


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
