"""``onnxruntime``: an ONNX file (exported, or built from the eager model into the artefact cache)
run by ONNX Runtime, with the CUDA execution provider on a GPU, else the CPU one."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from sage_core.backends import affine_cpu
from sage_core.backends.base import Backend, BuildContext, prepare_for_inference
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

    def __init__(self, path: Path, device: torch.device, threads: int = 1, affine_scale: int = 0) -> None:
        ort = import_onnxruntime()
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(f"onnxruntime here has no CUDA execution provider (has "
                                   f"{', '.join(ort.get_available_providers())}); use device cpu or "
                                   "install onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # A fixed pool that sleeps when idle: spinning threads would take the cores the node needs to
        # receive and publish images (benchmarks/bench_node.py shows the CPU use).
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types; one clear error instead
            raise BackendError(f"{path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from None
        self.fp16 = self.session.get_inputs()[0].type == "tensor(float16)"
        dims = self.session.get_inputs()[0].shape[-2:]
        #: (height, width) of an export with a fixed input shape: other frames are resized to it and back.
        self.fixed_shape = tuple(dims) if all(isinstance(d, int) for d in dims) else None
        #: affine_scale > 0: the file holds the head of a model's CPU split (that pools by affine_scale); the
        #: full-resolution parts run in OpenCV (affine_cpu.py).
        self.split_affine, self.scale = affine_scale > 0, affine_scale
        super().__init__(device, f"{providers[0]}, {'fp16' if self.fp16 else 'fp32'}, {threads} thread(s)"
                         + (", pooling and upsampling in OpenCV" if affine_scale else ""))

    @classmethod
    def available(cls, device: torch.device) -> tuple[bool, str]:
        try:
            ort = import_onnxruntime()
        except BackendError as exc:
            return False, str(exc)
        if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return False, "onnxruntime has no CUDA execution provider here"
        return True, ""

    @classmethod
    def from_model(cls, model: FusionModel, context: BuildContext) -> tuple[Backend, str]:
        cpu_split = model.cpu_split() if context.device.type == "cpu" else None
        split = cpu_split is not None
        parts = {"kind": "onnx_affine_pooled_head" if split else "onnx", "model_sha256": file_sha256(context.source),
                 "opset": ONNX_OPSET, "torch": torch.__version__, "precision": "fp16" if context.fp16 else "fp32"}
        backend, status = context.cache.get_or_build(
            parts, ".onnx", lambda p: export_onnx(model, p, fp16=context.fp16, head_only=split),
            lambda p: cls(p, context.device, context.threads, cpu_split.scale if cpu_split else 0),
            context.options.force_engine_update)
        return backend, status

    @classmethod
    def from_file(cls, path: Path, meta: dict, context: BuildContext) -> Backend:
        return cls(path, context.device, context.threads)

    @classmethod
    def export(cls, model: FusionModel, path: Path, precision: str, shape: tuple[int, int] | None,
               device: torch.device) -> None:
        export_onnx(model, path, shape, fp16=precision == "fp16")
        import onnx

        try:
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise BackendError(f"the exported ONNX model fails onnx.checker: {str(exc).splitlines()[0]}") from None

    def run_numpy(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        return self.run_numpy_planes(y, ir)[0]

    def run_numpy_planes(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        size = y.shape
        if self.fixed_shape is not None and size != self.fixed_shape:
            # An export with a fixed shape (--shape) runs at that shape: resize in, and the output back.
            height, width = self.fixed_shape
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
        if not self.split_affine or (self.fixed_shape is not None and y.shape != self.fixed_shape):
            return self.run_numpy(y, ir)
        return affine_cpu.fuse_split(self._head, y, ir, self.scale, coefficient_filter)

    def _head(self, pooled: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pooled": pooled})[0][0]

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        out = self.run_numpy(y[0, 0].cpu().numpy(), ir[0, 0].cpu().numpy())
        return torch.from_numpy(out)[None, None].to(y.device)
