"""The registry of backends: name -> class, export format -> class. A new backend is one line here."""

from __future__ import annotations

import torch

from sage_core.backends.base import Backend
from sage_core.backends.onnx_runtime import OnnxRuntimeBackend
from sage_core.backends.tensorrt_engine import TensorRTBackend
from sage_core.backends.torch_eager import TorchBackend
from sage_core.backends.torchscript import TorchScriptBackend
from sage_core.errors import BackendError
from sage_core.inference_settings import BACKEND_CHOICES

#: Backend name -> class. ``auto`` is not a backend but a choice among these (see loading.py).
BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (
    TorchBackend, TorchScriptBackend, OnnxRuntimeBackend, TensorRTBackend)}
# The settings table names the choices without importing the backends (it must load without torch).
if ("auto", *BACKENDS) != BACKEND_CHOICES:
    raise ImportError(f"sage_core.inference_settings.BACKEND_CHOICES {BACKEND_CHOICES} does not match the registry's "
                      f"backends {tuple(BACKENDS)}; add the new backend's name there")
#: Export format (training/export.py --format) -> the backend that runs it.
FORMATS: dict[str, type[Backend]] = {cls.file_format: cls for cls in BACKENDS.values() if cls.file_format}


def backend_class(name: str) -> type[Backend]:
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendError(f"backend {name!r}; expected one of {', '.join(BACKEND_CHOICES)}") from None


def available(name: str, device: torch.device) -> tuple[bool, str]:
    """Whether backend ``name`` can run on ``device`` here, and if not, why."""
    if name not in BACKENDS:
        return False, f"unknown backend {name!r}"
    return BACKENDS[name].available(device)
