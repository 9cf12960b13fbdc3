"""The settings that choose and build a model's inference backend, travelling together as one object.

The fields are the settings of :mod:`sage_core.inference_settings` (names, defaults, descriptions;
a test keeps the two equal), the node's parameters and CLI flags of the same names, and the Python
API (:meth:`sage_core.fuser.Fuser.from_options`). Importing this module loads no torch (resolve_device
imports it when called), so the settings can be read where torch is not installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sage_core.errors import ConfigError
from sage_core.inference_settings import DEVICES

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_ENGINE_SHAPE", "DEFAULT_WEIGHTS", "DEVICES", "SHIPPED_MODELS", "InferenceOptions",
           "resolve_device", "resolve_threads"]

#: Where the shipped default model lives (our checkpoint format); used when no model file is given.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "affine_fuse_default.pt"
#: The shipped models by name (``inference_settings.MODEL_NAMES``; model card: sage_core/weights/README.md).
SHIPPED_MODELS = {"default": DEFAULT_WEIGHTS, "detection": DEFAULT_WEIGHTS.with_name("affine_chroma_detection.pt")}
#: The frame size (height, width) compiled engines are tuned at (their profile's ``opt``; they take 32x32 to
#: 1920x1200, see backends/engine_profile.py); 640x512 is the common thermal size.
DEFAULT_ENGINE_SHAPE = (512, 640)


@dataclass(frozen=True)
class InferenceOptions:
    """How to load and run a fusion model; every field has the node parameter's name and meaning."""

    model: str = "default"  # a shipped model by name (SHIPPED_MODELS), used when model_file_path is not given
    model_file_path: str | os.PathLike | None = None  # None or "": the shipped model named by ``model``
    device: str = "auto"  # auto | cpu | cuda[:N]
    backend: str = "auto"  # one of inference_settings.BACKEND_CHOICES
    engine_cache_dir: str | os.PathLike | None = None  # None: ~/.cache/sage_ros/engines
    force_engine_update: bool = False  # rebuild cached engines (TensorRT, ONNX) even when valid
    enable_fp16: bool = False  # half precision on a GPU
    engine_shape: tuple[int, int] = DEFAULT_ENGINE_SHAPE  # the size engines are tuned at (height, width)
    inference_threads: int = 0  # CPU threads of the backend; 0: auto (see resolve_threads)

    @property
    def model_path(self) -> Path:
        """The model file to load: the given one, or the shipped model named by :attr:`model`."""
        if self.model_file_path:
            return Path(self.model_file_path)
        if self.model not in SHIPPED_MODELS:
            raise ConfigError(f"model {self.model!r}: not a shipped model; expected one of {', '.join(SHIPPED_MODELS)} "
                              "(or a file in model_file_path)")
        return SHIPPED_MODELS[self.model]


def resolve_threads(threads: int, pool_spins: bool = False) -> int:
    """Threads for CPU inference: ``threads`` if > 0; else every core for a pool that sleeps when idle
    (ONNX Runtime with spinning off, OpenCV), half of them (at least 1) for one that spins while it waits
    (PyTorch's OpenMP pool), which would otherwise take the cores a live node needs for receiving and
    publishing images (benchmarks/bench_node.py shows the difference on a small machine)."""
    if threads < 0:
        raise ConfigError(f"inference_threads {threads}: expected 0 (auto) or a positive number of threads")
    cores = os.cpu_count() or 2
    return threads or (max(1, cores // 2) if pool_spins else cores)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error, not a silent CPU run."""
    import torch  # here, not at the top: the settings are read where torch is absent (launch files)

    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device; expected auto, cpu or cuda[:N]") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; expected auto, cpu or cuda[:N]")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    return resolved
