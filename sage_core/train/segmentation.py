"""The teacher's segmentation term (method.md): a segmentation network on the colourised fused image,
cross-entropy against per-pixel labels, weight 0.3.

The released code uses a pretrained X-Decoder, which cannot be had here. Two stand-ins:

- ``model: ours`` (default): :class:`SmallSegNet`, a small conv network of ours trained alongside
  the teacher (its own Adam) on the teacher's colourised fused crops;
- ``model: PATH``: a user's TorchScript segmentation model, frozen; it takes ``(N, 3, H, W)`` RGB
  in [0, 1] and returns ``(N, classes, H, W)`` logits (or at a lower resolution: they are resized).

Labels are per-pixel class-index PNGs named like the pairs (``LABELS/<stem>.png``, the MSRS and
FMB convention); ``ignore_index`` pixels (255 by default) count for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sage_core.errors import ConfigError


@dataclass
class SegmentationConfig:
    labels: str | None = None  # folder of <stem>.png class-index labels; None: no segmentation term
    weight: float = 0.3
    classes: int | None = None  # number of classes (labels are 0..classes-1 or ignore_index)
    model: str = "ours"  # ours | path to a TorchScript segmentation model
    ignore_index: int = 255
    lr: float = 1e-3  # ours: its Adam learning rate
    width: int = 16  # ours: channel width

    @property
    def enabled(self) -> bool:
        return self.labels is not None


def check_segmentation(c: SegmentationConfig) -> None:
    """ConfigErrors naming the teacher.segmentation key that is wrong."""
    if not c.enabled:
        return
    if not Path(c.labels).is_dir():
        raise ConfigError(f"teacher.segmentation.labels: {c.labels} is not a folder of <stem>.png label images")
    if not isinstance(c.classes, int) or c.classes < 2:
        raise ConfigError(f"teacher.segmentation.classes: expected the number of classes (>= 2), got {c.classes!r}")
    if not isinstance(c.weight, (int, float)) or c.weight < 0:
        raise ConfigError(f"teacher.segmentation.weight: expected a number >= 0, got {c.weight!r}")
    if c.model != "ours" and not Path(c.model).is_file():
        raise ConfigError(f"teacher.segmentation.model: expected 'ours' or a TorchScript file, got {c.model!r}")


class LabelSource:
    """Reads and checks the label image of each training pair."""

    def __init__(self, config: SegmentationConfig) -> None:
        self.root, self.classes, self.ignore = Path(config.labels), config.classes, config.ignore_index

    def read(self, pair, shape: tuple[int, int]) -> np.ndarray:
        path = self.root / f"{pair.stem}.png"
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if label is None:
            raise ConfigError(f"teacher.segmentation.labels: no readable label {path} for pair {pair.stem}")
        if label.ndim == 3:
            label = label[..., 0]  # colour-saved index images carry the index in every channel
        if label.shape != tuple(shape):
            raise ConfigError(f"teacher.segmentation.labels: {path} is {label.shape[1]}x{label.shape[0]}, "
                              f"its pair {shape[1]}x{shape[0]} (W x H)")
        bad = (label >= self.classes) & (label != self.ignore)
        if bad.any():
            raise ConfigError(f"teacher.segmentation.classes: {path} holds class {int(label[bad].max())}, "
                              f"expected 0..{self.classes - 1} or {self.ignore} (ignored)")
        return label.astype(np.uint8)


def colourise(y: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """Fused luminance + visible chroma -> RGB ``(N, 3, H, W)`` in [0, 1] (method.md), differentiable."""
    dcr, dcb = cr - 0.5, cb - 0.5
    rgb = torch.cat((y + 1.403 * dcr, y - 0.714 * dcr - 0.344 * dcb, y + 1.773 * dcb), dim=1)
    return rgb.clamp(0.0, 1.0)


class SmallSegNet(nn.Module):
    """RGB -> class logits at the input's size: two scales, a dilated context conv, one skip."""

    def __init__(self, classes: int, width: int = 16) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.1)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), act)
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), act,
                                  nn.Conv2d(2 * width, 2 * width, 3, padding=2, dilation=2), act)
        self.head = nn.Sequential(nn.Conv2d(3 * width, width, 3, padding=1), act, nn.Conv2d(width, classes, 1))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        fine = self.stem(rgb)
        coarse = F.interpolate(self.down(fine), size=fine.shape[2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat((fine, coarse), 1))


class SegmentationTerm:
    """``weight * CE(seg(colourise(F)), labels)`` for the teacher; ours also learns from the same crops."""

    def __init__(self, config: SegmentationConfig, device: torch.device) -> None:
        self.config = config
        self.optimiser = None
        if config.model == "ours":
            self.net: nn.Module = SmallSegNet(config.classes, config.width).to(device)
            self.optimiser = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        else:
            try:
                self.net = torch.jit.load(config.model, map_location=device)
            except (RuntimeError, ValueError) as exc:
                raise ConfigError(f"teacher.segmentation.model: {config.model} is not a TorchScript model: "
                                  f"{str(exc).splitlines()[0]}") from None
            self.net.eval()
            for parameter in self.net.parameters():  # frozen: ScriptModules have no requires_grad_()
                parameter.requires_grad_(False)

    def loss(self, fused: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The weighted cross-entropy; call :meth:`step` after backward to train ours."""
        if self.optimiser is not None:
            self.net.train()
            self.optimiser.zero_grad(set_to_none=True)
        logits = self.net(colourise(fused, cr, cb))
        if logits.ndim != 4 or logits.shape[1] != self.config.classes:
            raise ConfigError(f"teacher.segmentation.model: expected (N, {self.config.classes}, H, W) logits, "
                              f"got shape {tuple(logits.shape)}")
        logits = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
        if not (labels != self.config.ignore_index).any():
            return logits.sum() * 0.0  # nothing labelled in these crops: no term, graph kept
        return self.config.weight * F.cross_entropy(logits, labels, ignore_index=self.config.ignore_index)

    def step(self) -> None:
        if self.optimiser is not None:
            self.optimiser.step()

    def state_dict(self) -> dict | None:
        if self.optimiser is None:
            return None
        return {"net": self.net.state_dict(), "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, saved: dict | None) -> None:
        if self.optimiser is not None and saved is not None:
            self.net.load_state_dict(saved["net"])
            self.optimiser.load_state_dict(saved["optimiser"])

