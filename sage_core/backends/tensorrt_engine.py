"""``tensorrt``: a TensorRT engine through torch-tensorrt (``[tensorrt]`` extra, CUDA only), built for
one input shape and kept in the artefact cache, or loaded from an exported ``.ep`` file."""

from __future__ import annotations

from pathlib import Path

import torch

from sage_core.backends.base import Backend, BuildContext, ModuleBackend, prepare_for_inference
from sage_core.backends.cache import device_identity
from sage_core.backends.export_format import library_versions
from sage_core.checkpoint import file_sha256
from sage_core.errors import BackendError
from sage_core.models import FusionModel


def import_torch_tensorrt():
    try:
        import torch_tensorrt
    except ImportError:
        raise BackendError("torch-tensorrt is not installed (pip install -e .[tensorrt], on a machine with "
                           "CUDA and TensorRT)") from None
    return torch_tensorrt


def compile_engine(model: FusionModel, device: torch.device, fp16: bool, shape: tuple[int, int]):
    """(compiled module, example inputs) for ``shape`` (height, width)."""
    torch_tensorrt = import_torch_tensorrt()
    module = prepare_for_inference(model).to(device)
    example = [torch.rand(1, 1, *shape, device=device)] * 2
    compiled = torch_tensorrt.compile(module, ir="dynamo", inputs=example,
                                      enabled_precisions={torch.half if fp16 else torch.float})
    return compiled, example


class TensorRTBackend(ModuleBackend):
    name = "tensorrt"
    file_format = "tensorrt"
    file_suffix = ".ep"

    def __init__(self, module, device: torch.device, detail: str) -> None:
        super().__init__(module, device, False, detail)  # precision is compiled into the engine

    @classmethod
    def available(cls, device: torch.device) -> tuple[bool, str]:
        if device.type != "cuda":
            return False, "TensorRT needs a CUDA device"
        try:
            import_torch_tensorrt()
        except BackendError as exc:
            return False, str(exc)
        return True, ""

    @classmethod
    def from_model(cls, model: FusionModel, context: BuildContext) -> tuple[Backend, str]:
        torch_tensorrt = import_torch_tensorrt()
        shape, fp16 = tuple(context.options.engine_shape), context.fp16
        parts = {"kind": "tensorrt", "model_sha256": file_sha256(context.source),
                 "tensorrt": library_versions().get("tensorrt"), "torch_tensorrt": torch_tensorrt.__version__,
                 **device_identity(context.device), "precision": "fp16" if fp16 else "fp32", "shape": list(shape)}

        def build(path: Path) -> None:
            compiled, example = compile_engine(model, context.device, fp16, shape)
            torch_tensorrt.save(compiled, str(path), inputs=example)

        module, status = context.cache.get_or_build(parts, ".ep", build,
                                                    lambda p: torch_tensorrt.load(str(p)).module(),
                                                    context.options.force_engine_update)
        return cls(module, context.device, f"TensorRT engine, {parts['precision']}"), status

    @classmethod
    def from_file(cls, path: Path, meta: dict, context: BuildContext) -> Backend:
        device = context.device
        ok, why = cls.available(device)
        if not ok:
            raise BackendError(f"{path} is a TensorRT engine but {why}")
        try:
            module = import_torch_tensorrt().load(str(path)).module()
        except Exception as exc:  # noqa: BLE001 - TensorRT raises assorted types; one clear error instead
            raise BackendError(f"{path}: TensorRT cannot load this engine ({str(exc).splitlines()[0]}); engines "
                               "are specific to the GPU and TensorRT version: re-export it here") from None
        return cls(module, device, f"TensorRT engine, {meta.get('precision', 'fp32')}")

    @classmethod
    def export(cls, model: FusionModel, path: Path, precision: str, shape: tuple[int, int] | None,
               device: torch.device) -> None:
        ok, why = cls.available(device)
        if not ok:
            raise BackendError(f"cannot export to TensorRT: {why}")
        compiled, example = compile_engine(model, device, precision == "fp16", shape)
        import_torch_tensorrt().save(compiled, str(path), inputs=example)
