"""``torch``: the eager model, BatchNorm folded, ``inference_mode``; channels-last and fp16 on CUDA."""

from __future__ import annotations

import numpy as np
import torch

from sage_core.backends import affine_cpu
from sage_core.backends.base import Backend, BuildContext, ModuleBackend, prepare_for_inference
from sage_core.models import FusionModel


class TorchBackend(ModuleBackend):
    name = "torch"

    def __init__(self, model: FusionModel, device: torch.device, fp16: bool = False) -> None:
        module = prepare_for_inference(model).to(device)
        fp16 = fp16 and device.type == "cuda"
        if device.type == "cuda":
            module = module.to(memory_format=torch.channels_last)
            if fp16:
                module = module.half()
        #: On a CPU, the full-resolution half of a model that offers a split runs in OpenCV (see affine_cpu.py).
        self.split = module.model.cpu_split() if device.type == "cpu" else None
        self.split_affine = self.split is not None
        detail = f"eager, BatchNorm folded, {torch.get_num_threads()} thread(s)" + (", fp16" if fp16 else "") + (
            ", pooling and upsampling in OpenCV" if self.split_affine else "")
        super().__init__(module, device, fp16, detail)

    def run_numpy(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        if self.split is None:
            return super().run_numpy(y, ir)
        return self.run_numpy_filtered(y, ir, None)

    def run_numpy_filtered(self, y: np.ndarray, ir: np.ndarray,
                           coefficient_filter: affine_cpu.CoefficientFilter | None) -> np.ndarray:
        if self.split is None:
            return super().run_numpy(y, ir)
        return affine_cpu.fuse_split(self._head, y, ir, self.split.scale, coefficient_filter)

    def _head(self, pooled: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.split.head(torch.from_numpy(pooled))[0].float().numpy()

    @classmethod
    def from_model(cls, model: FusionModel, context: BuildContext) -> tuple[Backend, str]:
        return cls(model, context.device, context.fp16), ""
