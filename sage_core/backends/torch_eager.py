"""``torch``: the eager model, BatchNorm folded, ``inference_mode``; channels-last and fp16 on CUDA."""

from __future__ import annotations

import torch

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
        super().__init__(module, device, fp16, f"eager, BatchNorm folded{', fp16' if fp16 else ''}")

    @classmethod
    def from_model(cls, model: FusionModel, context: BuildContext) -> tuple[Backend, str]:
        return cls(model, context.device, context.fp16), ""
