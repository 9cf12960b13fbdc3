"""Inference backends behind one interface, in one registry.

A backend maps visible luminance and thermal ``(N, 1, H, W)`` float32 in [0, 1] to the fused
luminance. :func:`load_backend` takes any model file the product accepts (our checkpoints, the
released student, or a file exported by ``training/export.py`` with its sidecar) and
:class:`~sage_core.options.InferenceOptions`:

- ``torch``: eager PyTorch, ``inference_mode``, BatchNorm folded, channels-last and fp16 on CUDA;
- ``torchscript``: a scripted module (exported file, or scripted on the fly);
- ``onnxruntime``: ONNX Runtime; on a GPU its TensorRT provider, then CUDA, then CPU (``onnx_providers.py``);
- ``tensorrt``: a torch-tensorrt engine over a range of frame sizes (``engine_profile.py``), compiled from the
  program ``tensorrt_trace.py`` builds (rehearsed on a CPU by ``rehearsal.py``), accepted only within 2 grey
  levels of eager PyTorch;
- ``auto``: the fastest available for the device that builds, with the reasons logged (a failed build falls
  back to the next).

A new backend is one class (see :mod:`sage_core.backends.base`) added to the registry
(:mod:`sage_core.backends.registry`).
"""

from __future__ import annotations

from sage_core.backends.base import Backend, BuildContext, fold_batchnorm, prepare_for_inference
from sage_core.backends.loading import LoadedBackend, auto_candidates, load_backend
from sage_core.backends.onnx_runtime import OnnxRuntimeBackend
from sage_core.backends.registry import BACKEND_CHOICES, BACKENDS, FORMATS, available, backend_class
from sage_core.backends.tensorrt_engine import TensorRTBackend
from sage_core.backends.torch_eager import TorchBackend
from sage_core.backends.torchscript import TorchScriptBackend
from sage_core.errors import BackendError

__all__ = ["BACKENDS", "BACKEND_CHOICES", "FORMATS", "Backend", "BackendError", "BuildContext", "LoadedBackend",
           "OnnxRuntimeBackend", "TensorRTBackend", "TorchBackend", "TorchScriptBackend", "auto_candidates",
           "available", "backend_class", "fold_batchnorm", "load_backend", "prepare_for_inference"]
