"""``torchscript``: a scripted module, exported (``.ts``) or scripted in memory from the eager model.

torch warns that TorchScript is deprecated; it is still what C++ deployments and older Jetson stacks
load, so it stays available, quietly.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from sage_core.backends.base import Backend, BuildContext, ModuleBackend, prepare_for_inference
from sage_core.errors import BackendError
from sage_core.models import FusionModel


def script(model: FusionModel) -> torch.jit.ScriptModule:
    """TorchScript of the inference module (forward(y, ir) -> fused)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(prepare_for_inference(model))


class TorchScriptBackend(ModuleBackend):
    name = "torchscript"
    file_format = "torchscript"
    file_suffix = ".ts"

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device, fp16: bool = False) -> None:
        fp16 = fp16 and device.type == "cuda"
        module = module.to(device).eval()
        super().__init__(module.half() if fp16 else module, device, fp16, "scripted" + (", fp16" if fp16 else ""))

    @classmethod
    def from_model(cls, model: FusionModel, context: BuildContext) -> tuple[Backend, str]:
        return cls(script(model), context.device, context.fp16), "scripted in memory"

    @classmethod
    def from_file(cls, path: Path, meta: dict, context: BuildContext) -> Backend:
        device = context.device
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device)
        except Exception as exc:  # noqa: BLE001 - torch.jit raises assorted types; one clear error instead
            raise BackendError(f"{path}: not a loadable TorchScript file: {str(exc).splitlines()[0]}") from None
        return cls(module, device, meta.get("precision") == "fp16")

    @classmethod
    def export(cls, model: FusionModel, path: Path, precision: str, shape: tuple[int, int] | None,
               device: torch.device) -> dict:
        if precision != "fp32":
            raise BackendError("TorchScript exports are fp32; enable fp16 at run time on a GPU (enable_fp16)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(script(model), str(path))
        return {}
