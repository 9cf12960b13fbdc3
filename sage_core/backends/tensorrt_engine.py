"""``tensorrt``: a TensorRT engine through torch-tensorrt (CUDA only), kept in the artefact cache or loaded
from an exported ``.ep`` file.

Build (:func:`build_engine`): the inference module in the engine's precision on the GPU, traced and checked by
:func:`sage_core.backends.tensorrt_trace.trace` (what ``training/export.py --rehearse tensorrt`` runs on a
CPU), compiled by ``torch_tensorrt.dynamo.compile`` for the :class:`ShapeProfile` (min, opt, max), saved as
an ExportedProgram with the same dynamic shapes, loaded back, and accepted (:func:`accept_engine`) only when it
computes what eager fp32 PyTorch computes within :data:`ENGINE_TOLERANCE` at the profile's min, opt and max
on distinct ``y`` and ``ir``, with outputs in the precision asked for; a refused engine is never cached.
Frames outside the profile are resized into it and back (logged once).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from sage_core.backends import base, parity, tensorrt_trace
from sage_core.backends.base import Backend, BuildContext, ModuleBackend, prepare_for_inference
from sage_core.backends.engine_profile import ShapeProfile
from sage_core.backends.fingerprint import code_digest, device_identity, library_version, package_version
from sage_core.checkpoint import file_sha256
from sage_core.errors import BackendError
from sage_core.models import FusionModel
from sage_core.options import DEFAULT_ENGINE_SHAPE

log = logging.getLogger("sage_core.backends")

#: Largest difference from eager fp32 PyTorch an engine may have at any profile shape: 2 grey levels.
ENGINE_TOLERANCE = 2 / 255


def import_torch_tensorrt():
    try:
        import torch_tensorrt
    except ImportError:
        raise BackendError("torch-tensorrt is not installed (on a PC: pip install torch-tensorrt matching your "
                           "torch; on a Jetson: NVIDIA's wheel or a jetson-containers image; see the README)") from None
    return torch_tensorrt


def build_engine(torch_tensorrt, model: FusionModel, device: torch.device, fp16: bool, profile: ShapeProfile,
                 path: Path) -> None:
    """Trace, compile and save the engine to ``path`` (see the module docstring)."""
    dtype = torch.half if fp16 else torch.float
    module = prepare_for_inference(model).to(device=device, dtype=dtype)
    program, examples = tensorrt_trace.trace(module, profile, dtype, device)
    compiled = torch_tensorrt.dynamo.compile(
        program, arg_inputs=tensorrt_trace.tensorrt_inputs(torch_tensorrt, profile, examples), device=device,
        **tensorrt_trace.compile_kwargs(torch_tensorrt.dynamo.compile, fp16))
    torch_tensorrt.save(compiled, str(path), output_format="exported_program", arg_inputs=list(examples),
                        dynamic_shapes=tensorrt_trace.dynamic_shapes(profile))


def load_engine(torch_tensorrt, path: Path):
    return torch_tensorrt.load(str(path)).module()


def accept_engine(engine, model: FusionModel, device: torch.device, fp16: bool, profile: ShapeProfile) -> str:
    """A one-line account of the engine against eager fp32 PyTorch; BackendError with the measured differences
    when it is above :data:`ENGINE_TOLERANCE` anywhere in the profile, or computes in another precision."""
    dtype = torch.half if fp16 else torch.float
    with torch.inference_mode():
        produced = engine(*parity.random_pair(profile.opt, dtype, device)).dtype
    if produced != dtype:
        raise BackendError(f"the engine asked for in {dtype} returns {produced}: it was not built in that precision")
    reference = prepare_for_inference(model).to(device)
    rows = parity.measure(engine, reference, profile.shapes(), device, dtype=dtype)
    measured = ", ".join(f"{row.label} {row.shape[1]}x{row.shape[0]} " + (
        f"{255 * row.max_abs_diff:.2f}" if row.max_abs_diff is not None else row.error) for row in rows)
    if parity.worst(rows) > ENGINE_TOLERANCE:
        raise BackendError(f"refused the {'fp16' if fp16 else 'fp32'} TensorRT engine: it differs from eager fp32 "
                           f"PyTorch by more than {255 * ENGINE_TOLERANCE:.0f} grey levels ({measured})")
    return f"engine output {dtype} within {255 * parity.worst(rows):.2f} grey levels of eager fp32 ({measured})"


def cache_parts(torch_tensorrt, model: FusionModel, context: BuildContext, profile: ShapeProfile) -> dict:
    """Everything that makes a cached engine invalid: the engine cache key."""
    settings = tensorrt_trace.compile_kwargs(torch_tensorrt.dynamo.compile, context.fp16)
    return {"kind": "tensorrt", "model_sha256": file_sha256(context.source),
            "code": code_digest(type(model), base, tensorrt_trace, sys.modules[__name__]),
            "sage_ros": package_version(), "torch": torch.__version__,
            "torch_tensorrt": str(torch_tensorrt.__version__), "tensorrt": library_version("tensorrt"),
            **device_identity(context.device), "precision": "fp16" if context.fp16 else "fp32",
            "profile": profile.to_json(), "compile": {name: str(value) for name, value in sorted(settings.items())}}


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    shrink = size[0] <= image.shape[-2] and size[1] <= image.shape[-1]
    if shrink:
        return F.interpolate(image, size=size, mode="area")
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)


class TensorRTBackend(ModuleBackend):
    name = "tensorrt"
    file_format = "tensorrt"
    file_suffix = ".ep"

    def __init__(self, module, device: torch.device, fp16: bool, profile: ShapeProfile, detail: str) -> None:
        super().__init__(module, device, fp16, detail)  # fp16: the engine's inputs and outputs are half
        self.profile = profile
        self._resize_logged = False

    @property
    def warmup_shape(self) -> tuple[int, int]:
        return self.profile.opt

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        size = (int(y.shape[-2]), int(y.shape[-1]))
        target = self.profile.fit(*size)
        if target == size:
            return super().run(y, ir)
        if not self._resize_logged:
            self._resize_logged = True
            log.warning("frames of %dx%d are outside the TensorRT engine's profile (%s): resized to %dx%d and "
                        "back", size[1], size[0], self.profile.describe(), target[1], target[0])
        with torch.inference_mode():
            return _resize(super().run(_resize(y, target), _resize(ir, target)), size)

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
        device, fp16 = context.device, context.fp16
        profile = ShapeProfile.around(tuple(context.options.engine_shape))

        def build(path: Path) -> None:
            build_engine(torch_tensorrt, model, device, fp16, profile, path)
            accept_engine(load_engine(torch_tensorrt, path), model, device, fp16, profile)  # refused: not cached

        module, status = context.cache.get_or_build(cache_parts(torch_tensorrt, model, context, profile), ".ep", build,
                                                    lambda p: load_engine(torch_tensorrt, p),
                                                    context.options.force_engine_update)
        accepted = accept_engine(module, model, device, fp16, profile)
        detail = f"TensorRT engine, {'fp16' if fp16 else 'fp32'}, {profile.describe()}"
        return cls(module, device, fp16, profile, detail), f"{status}; {accepted}"

    @classmethod
    def from_file(cls, path: Path, meta: dict, context: BuildContext) -> Backend:
        device = context.device
        ok, why = cls.available(device)
        if not ok:
            raise BackendError(f"{path} is a TensorRT engine but {why}")
        if "profile" in meta:
            profile = ShapeProfile.from_json(meta["profile"])
        elif isinstance(meta.get("shape"), list):  # an export from before profiles: one shape
            profile = ShapeProfile.fixed(tuple(meta["shape"]))
        else:
            raise BackendError(f"{path}: its sidecar names no engine profile; re-export it")
        try:
            module = load_engine(import_torch_tensorrt(), path)
        except Exception as exc:  # noqa: BLE001 - TensorRT raises assorted types; one clear error instead
            raise BackendError(f"{path}: TensorRT cannot load this engine ({str(exc).splitlines()[0]}); engines "
                               "are specific to the GPU and TensorRT version: re-export it here") from None
        fp16 = meta.get("precision") == "fp16"
        return cls(module, device, fp16, profile, f"TensorRT engine, {meta.get('precision', 'fp32')}, "
                   f"{profile.describe()}")

    @classmethod
    def export(cls, model: FusionModel, path: Path, precision: str, shape: tuple[int, int] | None,
               device: torch.device) -> dict:
        ok, why = cls.available(device)
        if not ok:
            raise BackendError(f"cannot export to TensorRT: {why}")
        torch_tensorrt = import_torch_tensorrt()
        fp16 = precision == "fp16"
        profile = ShapeProfile.fixed(shape) if shape else ShapeProfile.around(DEFAULT_ENGINE_SHAPE)
        build_engine(torch_tensorrt, model, device, fp16, profile, path)
        accepted = accept_engine(load_engine(torch_tensorrt, path), model, device, fp16, profile)
        return {"profile": profile.to_json(), "engine_check": accepted}
