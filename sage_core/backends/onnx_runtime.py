"""``onnxruntime``: an ONNX file (exported, or built from the eager model into the artefact cache) run by
ONNX Runtime: on a GPU its TensorRT provider first, then CUDA, then CPU (:mod:`onnx_providers`); on a CPU the
CPU provider, with an affine model's full-resolution arithmetic in OpenCV (:mod:`affine_cpu`)."""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from sage_core.backends import affine_cpu, onnx_providers
from sage_core.backends import base as base_module
from sage_core.backends.base import Backend, BuildContext, prepare_for_inference
from sage_core.backends.engine_profile import ShapeProfile
from sage_core.backends.fingerprint import code_digest, device_identity, library_version, package_version
from sage_core.checkpoint import file_sha256
from sage_core.errors import BackendError
from sage_core.models import FusionModel

# The TorchScript-based exporter: the default before PyTorch 2.9, asked for by name since 2.5 (JetPack 6's
# PyTorch 2.3 / 2.4 has no such keyword, and no other exporter by default).
_TORCHSCRIPT_EXPORTER = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}

ONNX_OPSET = 17  # supported by TensorRT 8.6+ and every ONNX Runtime in use; has everything our models need


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise BackendError("onnxruntime is not installed (pip install -e .[export])") from None
    return onnxruntime


def export_onnx(model: FusionModel, path: Path, shape: tuple[int, int] | None = None, fp16: bool = False,
                head_only: bool = False) -> None:
    """ONNX with opset ONNX_OPSET; dynamic height and width unless ``shape`` is given. ``head_only``: the head
    of the model's CPU split (``FusionModel.cpu_split``), coefficients from input ``pooled`` (1, 2, h, w)
    (affine_cpu.py; engine cache only)."""
    module = prepare_for_inference(model)
    height, width = shape or (64, 80)
    if head_only:
        split = module.model.cpu_split()
        if split is None:
            raise BackendError(f"{type(model).__name__} offers no CPU split; export the whole model")
        module = split.head
        inputs, example = ["pooled"], (torch.rand(1, 2, height, width),)
    else:
        inputs, example = ["y", "ir"], (torch.rand(1, 1, height, width), torch.rand(1, 1, height, width))
    if fp16:
        module, example = module.half(), tuple(t.half() for t in example)
    output = "coefficients" if head_only else "fused"
    dynamic = None if shape else {name: {2: "height", 3: "width"} for name in inputs + [output]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter
        torch.onnx.export(module, example, str(path), input_names=inputs, output_names=[output],
                          opset_version=ONNX_OPSET, dynamic_axes=dynamic, do_constant_folding=True,
                          **_TORCHSCRIPT_EXPORTER)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    file_format = "onnx"
    file_suffix = ".onnx"
    tensors = False

    def __init__(self, path: Path, device: torch.device, threads: int = 1, affine_scale: int = 0, fp16: bool = False,
                 tensorrt_cache: Path | None = None, profile: ShapeProfile | None = None) -> None:
        """``fp16``: the TensorRT provider builds in half precision; ``tensorrt_cache``: its engine folder (None: no
        TensorRT provider); ``profile``: the frame sizes its engine takes (see onnx_providers.py)."""
        ort = import_onnxruntime()
        requested = onnx_providers.provider_chain(ort.get_available_providers(), device, fp16, tensorrt_cache,
                                                  profile)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # A fixed pool that sleeps when idle: spinning threads would take the cores the node needs to
        # receive and publish images (benchmarks/bench_node.py shows the CPU use).
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=[name for name, _ in requested],
                                                provider_options=[opts for _, opts in requested])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types; one clear error instead
            raise BackendError(f"{path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from None
        #: The provider that runs first, and why one asked for did not start ('' when all did).
        self.provider, self.provider_note = onnx_providers.describe_session(requested, self.session.get_providers())
        self.fp16 = self.session.get_inputs()[0].type == "tensor(float16)"
        dims = self.session.get_inputs()[0].shape[-2:]
        #: (height, width) of an export with a fixed input shape: other frames are resized to it and back.
        self.fixed_shape = tuple(dims) if all(isinstance(d, int) for d in dims) else None
        #: The sizes the TensorRT provider's engine takes, when it runs: other frames are resized into them.
        self.profile = profile if self.provider == onnx_providers.TENSORRT and self.fixed_shape is None else None
        #: affine_scale > 0: the file holds the head of a model's CPU split (that pools by affine_scale); the
        #: full-resolution parts run in OpenCV (affine_cpu.py).
        self.split_affine, self.scale = affine_scale > 0, affine_scale
        super().__init__(device, f"{self.provider}, {'fp16' if self.fp16 else 'fp32'}, {threads} thread(s)"
                         + (", pooling and upsampling in OpenCV" if affine_scale else "")
                         + (f", engine profile {self.profile.describe()}" if self.profile else ""))

    @property
    def warmup_shape(self) -> tuple[int, int]:
        return self.fixed_shape or (self.profile.opt if self.profile else super().warmup_shape)

    @classmethod
    def available(cls, device: torch.device) -> tuple[bool, str]:
        try:
            ort = import_onnxruntime()
        except BackendError as exc:
            return False, str(exc)
        if device.type == "cuda" and onnx_providers.CUDA not in ort.get_available_providers():
            return False, "onnxruntime has no CUDA execution provider here (install onnxruntime-gpu)"
        return True, ""

    @staticmethod
    def _tensorrt_cache(context: BuildContext, source: dict, profile: ShapeProfile) -> Path | None:
        """The TensorRT provider's engine folder for this ONNX file (``source``: its cache parts), None when
        that provider is absent or the device is a CPU."""
        if context.device.type != "cuda":
            return None
        if onnx_providers.TENSORRT not in import_onnxruntime().get_available_providers():
            return None
        return context.cache.subfolder({
            "kind": "onnxruntime_tensorrt", "onnx": source, "tensorrt": library_version("tensorrt"),
            **device_identity(context.device), "precision": "fp16" if context.fp16 else "fp32",
            "profile": profile.to_json()})

    @classmethod
    def from_model(cls, model: FusionModel, context: BuildContext) -> tuple[Backend, str]:
        cpu_split = model.cpu_split() if context.device.type == "cpu" else None
        split = cpu_split is not None
        parts = {"kind": "onnx_affine_pooled_head" if split else "onnx", "model_sha256": file_sha256(context.source),
                 "code": code_digest(type(model), base_module, sys.modules[__name__]), "sage_ros": package_version(),
                 "opset": ONNX_OPSET, "torch": torch.__version__, "onnxruntime": library_version("onnxruntime"),
                 "precision": "fp16" if context.fp16 else "fp32"}
        profile = ShapeProfile.around(tuple(context.options.engine_shape))
        tensorrt_cache = cls._tensorrt_cache(context, parts, profile)
        backend, status = context.cache.get_or_build(
            parts, ".onnx", lambda p: export_onnx(model, p, fp16=context.fp16, head_only=split),
            lambda p: cls(p, context.device, context.threads, cpu_split.scale if cpu_split else 0, context.fp16,
                          tensorrt_cache, profile),
            context.options.force_engine_update)
        return backend, "; ".join(filter(None, (status, f"ONNX Runtime runs on {backend.provider}",
                                                backend.provider_note)))

    @classmethod
    def from_file(cls, path: Path, meta: dict, context: BuildContext) -> Backend:
        # A fixed-shape export (--shape) needs no profile; a dynamic one gets the same as a cached build.
        fixed = isinstance(meta.get("shape"), list)
        profile = ShapeProfile.fixed(tuple(meta["shape"])) if fixed else ShapeProfile.around(
            tuple(context.options.engine_shape))
        source = {"kind": "onnx_file", "sha256": file_sha256(path), "onnxruntime": library_version("onnxruntime")}
        fp16 = meta.get("precision") == "fp16"
        return cls(path, context.device, context.threads, 0, fp16, cls._tensorrt_cache(context, source, profile),
                   None if fixed else profile)

    @classmethod
    def export(cls, model: FusionModel, path: Path, precision: str, shape: tuple[int, int] | None,
               device: torch.device) -> dict:
        export_onnx(model, path, shape, fp16=precision == "fp16")
        import onnx

        try:
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise BackendError(f"the exported ONNX model fails onnx.checker: {str(exc).splitlines()[0]}") from None
        return {"opset": ONNX_OPSET}

    def _frame_shape(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size a frame of ``size`` runs at: the export's fixed shape, or the nearest the engine takes."""
        if self.fixed_shape is not None:
            return self.fixed_shape
        return self.profile.fit(*size) if self.profile is not None else size

    def run_numpy(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        return self.run_numpy_planes(y, ir)[0]

    def run_numpy_planes(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        size = y.shape
        if self._frame_shape(size) != size:
            # An export with a fixed shape (--shape), or a frame outside the TensorRT provider's profile: resize
            # in, and the output back.
            height, width = self._frame_shape(size)
            shrink = height * width < size[0] * size[1]
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            y, ir = (cv2.resize(np.ascontiguousarray(a, np.float32), (width, height), interpolation=interpolation)
                     for a in (y, ir))
        dtype = np.float16 if self.fp16 else np.float32
        if self.split_affine:  # a CPU session (fp32): pooling and upsampling here, see affine_cpu.py
            return affine_cpu.fuse_split(self._head, y, ir, self.scale)[None]
        feeds = {"y": np.ascontiguousarray(y, dtype=dtype)[None, None],
                 "ir": np.ascontiguousarray(ir, dtype=dtype)[None, None]}
        planes = self.session.run(None, feeds)[0][0].astype(np.float32)
        if planes.shape[1:] != size:
            planes = np.stack([cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for p in planes])
        return planes

    def run_numpy_filtered(self, y: np.ndarray, ir: np.ndarray,
                           coefficient_filter: affine_cpu.CoefficientFilter | None) -> np.ndarray:
        if not self.split_affine or self._frame_shape(y.shape) != y.shape:
            return self.run_numpy(y, ir)
        return affine_cpu.fuse_split(self._head, y, ir, self.scale, coefficient_filter)

    def _head(self, pooled: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pooled": pooled})[0][0]

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        out = self.run_numpy(y[0, 0].cpu().numpy(), ir[0, 0].cpu().numpy())
        return torch.from_numpy(out)[None, None].to(y.device)
