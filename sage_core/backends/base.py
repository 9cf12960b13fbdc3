"""What every inference backend is: a function (visible luminance, thermal) -> fused luminance on a device.

A backend class says whether it can run on a device here (:meth:`Backend.available`), builds itself
from an eager model (:meth:`Backend.from_model`) or from a file exported for it
(:meth:`Backend.from_file`), and, where it has a file format, writes that file (:meth:`Backend.export`).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sage_core.backends.cache import ArtifactCache
from sage_core.models import FusionModel
from sage_core.options import InferenceOptions, resolve_threads


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d in a Sequential into that convolution.

    Inference-only: the result computes the same function with one layer less per pair.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name_c, conv), (name_b, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                  conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
                with torch.no_grad():
                    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
                setattr(module, name_c, fused)
                setattr(module, name_b, nn.Identity())
    return model


class InferenceModule(nn.Module):
    """``forward(y, ir) -> fused`` only: what exporters and compilers see."""

    def __init__(self, model: FusionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(y, ir)[0]


def prepare_for_inference(model: FusionModel) -> InferenceModule:
    """Eval mode, frozen, BatchNorm folded, wrapped to return the fused image alone."""
    model = fold_batchnorm(copy.deepcopy(model).eval()).requires_grad_(False)
    return InferenceModule(model).eval()


@dataclass
class BuildContext:
    """What building a backend needs besides the model: where it came from (its sha256 keys cached
    artefacts), the device, the options, and the artefact cache."""

    source: Path
    device: torch.device
    options: InferenceOptions
    _cache: ArtifactCache | None = field(default=None, repr=False)

    @property
    def fp16(self) -> bool:
        return self.options.enable_fp16 and self.device.type == "cuda"

    @property
    def threads(self) -> int:
        """Threads of a pool that sleeps when idle (ONNX Runtime, OpenCV)."""
        return resolve_threads(self.options.inference_threads)

    @property
    def torch_threads(self) -> int:
        """Threads of PyTorch's CPU pool, which spins while it waits."""
        return resolve_threads(self.options.inference_threads, pool_spins=True)

    @property
    def cache(self) -> ArtifactCache:
        if self._cache is None:  # created on first use: torch and torchscript never touch the disk
            self._cache = ArtifactCache(self.options.engine_cache_dir)
        return self._cache


class Backend(ABC):
    """Runs the fused-luminance function on ``device``. ``tensors`` backends take torch tensors there."""

    name: ClassVar[str] = "backend"
    #: The export format this backend runs (training/export.py --format), with its file suffix; None: none.
    file_format: ClassVar[str | None] = None
    file_suffix: ClassVar[str] = ""
    tensors: ClassVar[bool] = True

    def __init__(self, device: torch.device, detail: str = "") -> None:
        self.device, self.detail = device, detail

    @classmethod
    def available(cls, device: torch.device) -> tuple[bool, str]:
        """Whether this backend can run on ``device`` here, and if not, why."""
        return True, ""

    @classmethod
    @abstractmethod
    def from_model(cls, model: FusionModel, context: BuildContext) -> tuple[Backend, str]:
        """The backend for an eager model, and a one-line status of how it was obtained (may be empty)."""

    @classmethod
    def from_file(cls, path: Path, meta: dict, context: BuildContext) -> Backend:
        """The backend for a file exported in :attr:`file_format` (``meta``: its sidecar)."""
        raise NotImplementedError(f"backend {cls.name} has no file format")

    @classmethod
    def export(cls, model: FusionModel, path: Path, precision: str, shape: tuple[int, int] | None,
               device: torch.device) -> dict:
        """Write ``model`` to ``path`` in :attr:`file_format`; returns what the sidecar adds about it."""
        raise NotImplementedError(f"backend {cls.name} has no file format")

    @property
    def warmup_shape(self) -> tuple[int, int]:
        """(height, width) of the warm-up frame: one this backend accepts and is tuned for (an engine's ``opt``)."""
        return 256, 320

    @abstractmethod
    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        """``(N, 1, H, W)`` float tensors in [0, 1] -> fused luminance, same shape."""

    #: Whether :meth:`run_numpy_filtered` exposes an affine model's coefficients (the CPU split, affine_cpu.py).
    split_affine: bool = False

    def run_numpy_filtered(self, y: np.ndarray, ir: np.ndarray, coefficient_filter) -> np.ndarray:
        """:meth:`run_numpy` with the coefficients through ``coefficient_filter`` (an
        ``affine_cpu.CoefficientFilter``) where :attr:`split_affine`; other backends have none and ignore it."""
        return self.run_numpy(y, ir)

    def run_numpy(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """H x W float32 arrays in, H x W float32 out."""
        return self.run_numpy_planes(y, ir)[0]

    def run_numpy_planes(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """H x W float32 arrays in, every output plane out, ``(C, H, W)`` float32: the fused luminance, and the
        chroma gain of a model with a chroma output (``FusionModel.chroma_output``)."""
        def to_device(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None].to(self.device)

        return self.run(to_device(y), to_device(ir))[0].float().cpu().numpy()


class ModuleBackend(Backend):
    """A torch module (eager, scripted or TensorRT-compiled) on a device; fp16 casts the inputs."""

    def __init__(self, module, device: torch.device, fp16: bool, detail: str) -> None:
        self.module, self.fp16 = module, fp16
        super().__init__(device, detail)

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.fp16:
                return self.module(y.half(), ir.half()).float()
            return self.module(y, ir)
