"""The one inference API: numpy thermal + visible images in, fused BGR uint8 out.

``sage-fuse``, the ROS node, the demo and the benchmarks all go through
:class:`Fuser`, so that a fix or speed-up here reaches every user at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sage_core.checkpoint import CheckpointInfo, load_model
from sage_core.color import LumaChroma, gray_to_uint8, ir_to_gray, recompose_bgr, vis_to_luma_chroma
from sage_core.errors import FusionInputError
from sage_core.models import FusionModel

#: Shipped default model (our format), used when no weights are given.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "lite_fuse_default.pt"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error, not a silent CPU run."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise FusionInputError(f"device {name!r} is not a torch device; expected auto, cpu or cuda[:N]") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FusionInputError(f"device {name!r} requested but CUDA is not available on this machine")
    if resolved.type not in ("cpu", "cuda"):
        raise FusionInputError(f"device {name!r} is not supported; expected auto, cpu or cuda[:N]")
    return resolved


class LuminanceFuser:
    """The colour pipeline around a luminance fusion rule (method.md): subclasses give ``fuse_luminance``.

    Networks (:class:`Fuser`) and the classical baselines share it, so every method
    is compared through exactly the same colour conversion.
    """

    name = "fuser"

    def fuse_luminance(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """Visible luminance and thermal, float32 H x W in [0, 1] -> fused luminance (clamped later)."""
        raise NotImplementedError

    @staticmethod
    def _planes(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, LumaChroma]:
        if ir.shape[:2] != vis.shape[:2]:
            raise FusionInputError(
                f"thermal is {ir.shape[1]}x{ir.shape[0]} but visible is {vis.shape[1]}x{vis.shape[0]} "
                "(W x H); both must have the same size"
            )
        return ir_to_gray(ir), vis_to_luma_chroma(vis)

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """Thermal (1/3-channel, 8/16-bit or float [0, 1]) + visible BGR -> fused BGR uint8.

        Both images must have the same height and width; align or resize them first.
        """
        gray_ir, luma = self._planes(ir, vis)
        return recompose_bgr(self.fuse_luminance(luma.y, gray_ir), luma.cr, luma.cb)

    def fuse_gray(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """Like :meth:`fuse`, but returns the fused luminance alone as a uint8 H x W image."""
        gray_ir, luma = self._planes(ir, vis)
        return gray_to_uint8(self.fuse_luminance(luma.y, gray_ir))


class Fuser(LuminanceFuser):
    """A loaded fusion network on a device, ready to fuse image pairs of any size.

    The model is loaded once; :meth:`fuse` runs under ``torch.inference_mode``.
    """

    def __init__(self, model: FusionModel, device: str | torch.device = "auto",
                 info: CheckpointInfo | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.info = info

    @classmethod
    def from_weights(cls, weights: str | os.PathLike | None = None, device: str | torch.device = "auto") -> Fuser:
        """Load any checkpoint we accept (ours or the released student); None -> shipped default."""
        model, info = load_model(DEFAULT_WEIGHTS if weights is None else weights)
        return cls(model, device=device, info=info)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.info.arch if self.info else self.model.arch

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(self.device)

    def fuse_luminance(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """Visible luminance and thermal, float32 H x W in [0, 1] -> fused luminance (unclamped)."""
        if y.shape != ir.shape or y.ndim != 2:
            raise FusionInputError(f"luminance {y.shape} and thermal {ir.shape} must be equal H x W arrays")
        with torch.inference_mode():
            fused = self.model(self._to_tensor(y), self._to_tensor(ir))
        return fused[0, 0].float().cpu().numpy()

    def warmup(self, height: int = 256, width: int = 320) -> None:
        """Run one dummy frame so the first real frame does not pay for lazy initialisation."""
        zeros = np.zeros((height, width), np.float32)
        self.fuse_luminance(zeros, zeros)
