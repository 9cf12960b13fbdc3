"""Inference backends behind one interface, and the cache of compiled artefacts (TensorRT engines, ONNX).

A backend maps visible luminance and thermal ``(N, 1, H, W)`` float32 in [0, 1] to
the fused luminance. :func:`load_backend` takes any model file the product accepts
(our checkpoints, the released student, or an artefact written by
``training/export.py`` with its sidecar JSON) and a backend name:

- ``torch``: eager PyTorch, ``inference_mode``, BatchNorm folded into the
  convolutions, channels-last and fp16 on CUDA;
- ``torchscript``: a scripted module (exported file, or scripted on the fly);
- ``onnxruntime``: ONNX Runtime, CUDA execution provider on a GPU, else CPU;
- ``tensorrt``: torch-tensorrt (``[tensorrt]`` extra), engines kept in an
  :class:`ArtifactCache` keyed by the model's sha256, the TensorRT version, the
  GPU and its compute capability, the precision and the input shape;
- ``auto``: the fastest available for the device, with the reasons logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sage_core.atomic import atomic_path
from sage_core.checkpoint import CheckpointInfo, file_sha256, load_model
from sage_core.errors import SageError
from sage_core.models import FusionModel

log = logging.getLogger("sage_core.runtime")

BACKENDS = ("auto", "torch", "torchscript", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16")
#: Formats written by training/export.py, and the backend that runs each.
FORMAT_BACKEND = {"torchscript": "torchscript", "onnx": "onnxruntime", "tensorrt": "tensorrt"}
ONNX_OPSET = 17  # supported by TensorRT 8.6+ and every ONNX Runtime in use; has everything our models need


class BackendError(SageError):
    """A backend cannot run here or cannot run this model file; the message says why."""


# ----- model preparation -------------------------------------------------------------------------------

def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d in a Sequential into that convolution.

    Inference-only: the result computes the same function with one layer less per pair.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name_c, conv), (name_b, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                  conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
                with torch.no_grad():
                    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
                setattr(module, name_c, fused)
                setattr(module, name_b, nn.Identity())
    return model


class InferenceModule(nn.Module):
    """``forward(y, ir) -> fused`` only: what exporters and compilers see."""

    def __init__(self, model: FusionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(y, ir)[0]


def prepare_for_inference(model: FusionModel) -> InferenceModule:
    """Eval mode, frozen, BatchNorm folded, wrapped to return the fused image alone."""
    import copy

    model = fold_batchnorm(copy.deepcopy(model).eval()).requires_grad_(False)
    return InferenceModule(model).eval()


# ----- backends ----------------------------------------------------------------------------------------

class Backend:
    """Runs the fused-luminance function on a device. ``tensors`` backends take torch tensors on ``device``."""

    name = "backend"
    tensors = True

    def __init__(self, device: torch.device, detail: str = "") -> None:
        self.device, self.detail = device, detail

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run_numpy(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """H x W float32 arrays in, H x W float32 out."""
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None].to(self.device)  # noqa: E731
        return self.run(to(y), to(ir))[0, 0].float().cpu().numpy()


class ModuleBackend(Backend):
    """A torch module (eager, scripted or TensorRT-compiled) on a device; fp16 casts the inputs."""

    def __init__(self, module, device: torch.device, fp16: bool, detail: str) -> None:
        self.module, self.fp16 = module, fp16
        super().__init__(device, detail)

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.fp16:
                return self.module(y.half(), ir.half()).float()
            return self.module(y, ir)


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


class TorchScriptBackend(ModuleBackend):
    name = "torchscript"

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device, fp16: bool = False) -> None:
        fp16 = fp16 and device.type == "cuda"
        module = module.to(device).eval()
        super().__init__(module.half() if fp16 else module, device, fp16, "scripted" + (", fp16" if fp16 else ""))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    tensors = False

    def __init__(self, path: Path, device: torch.device) -> None:
        ort = _import_onnxruntime()
        available = ort.get_available_providers()
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise BackendError(f"onnxruntime here has no CUDA execution provider (has {', '.join(available)})")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise BackendError(f"{path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from None
        self.fp16 = self.session.get_inputs()[0].type == "tensor(float16)"
        super().__init__(device, f"{providers[0]}, {'fp16' if self.fp16 else 'fp32'}")

    def run_numpy(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self.fp16 else np.float32
        feeds = {"y": np.ascontiguousarray(y, dtype=dtype)[None, None],
                 "ir": np.ascontiguousarray(ir, dtype=dtype)[None, None]}
        return self.session.run(None, feeds)[0][0, 0].astype(np.float32)

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        out = self.run_numpy(y[0, 0].cpu().numpy(), ir[0, 0].cpu().numpy())
        return torch.from_numpy(out)[None, None].to(y.device)


class TensorRTBackend(ModuleBackend):
    name = "tensorrt"

    def __init__(self, module, device: torch.device, detail: str) -> None:
        super().__init__(module, device, False, detail)  # precision is compiled into the engine


# ----- optional libraries ------------------------------------------------------------------------------

def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise BackendError("onnxruntime is not installed (pip install -e .[export])") from None
    return onnxruntime


def _import_torch_tensorrt():
    try:
        import torch_tensorrt
    except ImportError:
        raise BackendError("torch-tensorrt is not installed (pip install -e .[tensorrt], on a machine with "
                           "CUDA and TensorRT)") from None
    return torch_tensorrt


def available(name: str, device: torch.device) -> tuple[bool, str]:
    """Whether a backend can run on ``device`` here, and why not."""
    if name in ("torch", "torchscript"):
        return True, ""
    if name == "onnxruntime":
        try:
            ort = _import_onnxruntime()
        except BackendError as exc:
            return False, str(exc)
        if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return False, "onnxruntime has no CUDA execution provider here"
        return True, ""
    if name == "tensorrt":
        if device.type != "cuda":
            return False, "TensorRT needs a CUDA device"
        try:
            _import_torch_tensorrt()
        except BackendError as exc:
            return False, str(exc)
        return True, ""
    return False, f"unknown backend {name!r}"


# ----- the artefact cache ------------------------------------------------------------------------------

def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sage_ros" / "engines"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
        return True
    except OSError:
        return False


class ArtifactCache:
    """Compiled artefacts (TensorRT engines, ONNX files) keyed by everything that makes one invalid.

    The key covers the model's sha256 and every version, device and setting the artefact depends
    on, so a driver, GPU or TensorRT change never loads a stale engine. Writes are atomic (a
    temporary file renamed into place). A cached artefact that fails to load is rebuilt with a
    warning, never a crash. An unwritable folder falls back to the user cache folder, with a
    warning. Every decision is logged and returned as a one-line status.
    """

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        wanted = Path(folder) if folder else user_cache_dir()
        if _writable(wanted):
            self.folder = wanted
        else:
            fallback = user_cache_dir()
            if not _writable(fallback):
                raise BackendError(f"engine cache folder {wanted} is not writable, nor is the fallback {fallback}")
            log.warning("engine cache folder %s is not writable; using %s instead", wanted, fallback)
            self.folder = fallback

    @staticmethod
    def key(parts: dict) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    def path(self, parts: dict, suffix: str) -> Path:
        return self.folder / f"{parts.get('kind', 'artefact')}_{self.key(parts)}{suffix}"

    def get_or_build(self, parts: dict, suffix: str, build: Callable[[Path], None], load: Callable[[Path], object],
                     force: bool = False) -> tuple[object, str]:
        """Load the cached artefact for ``parts``, or build it (atomically) and load that."""
        path = self.path(parts, suffix)
        if path.is_file() and not force:
            try:
                artefact = load(path)
                return artefact, f"loaded cached {parts.get('kind', 'artefact')} {path}"
            except Exception as exc:  # a corrupt or incompatible engine: rebuild, never crash
                reason = f"cached {path.name} failed to load ({type(exc).__name__}: {str(exc)[:200]}); rebuilt"
                log.warning(reason)
        elif force:
            reason = "rebuild forced (force_engine_update)"
        else:
            reason = "no cached artefact for this model, library version, device, precision and shape"
        started = time.perf_counter()
        with atomic_path(path) as tmp:
            build(tmp)
        with atomic_path(path.with_name(path.name + ".json")) as tmp:
            tmp.write_text(json.dumps(parts, indent=2, sort_keys=True) + "\n")
        status = f"built {parts.get('kind', 'artefact')} {path} in {time.perf_counter() - started:.1f} s: {reason}"
        return load(path), status


# ----- exporting (shared with training/export.py) ------------------------------------------------------

def script(model: FusionModel) -> torch.jit.ScriptModule:
    """TorchScript of the inference module. torch warns that TorchScript is deprecated; it is still what
    C++ deployments and older Jetson stacks load, so it stays available (quietly)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(prepare_for_inference(model))


def export_torchscript(model: FusionModel, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # see script()
        torch.jit.save(script(model), str(path))


def export_onnx(model: FusionModel, path: Path, shape: tuple[int, int] | None = None, fp16: bool = False) -> None:
    """ONNX with opset ONNX_OPSET; dynamic height and width unless ``shape`` is given."""
    module = prepare_for_inference(model)
    height, width = shape or (64, 80)
    example = (torch.rand(1, 1, height, width), torch.rand(1, 1, height, width))
    if fp16:
        module, example = module.half(), tuple(t.half() for t in example)
    dynamic = None if shape else {"y": {2: "height", 3: "width"}, "ir": {2: "height", 3: "width"},
                                  "fused": {2: "height", 3: "width"}}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter
        torch.onnx.export(module, example, str(path), input_names=["y", "ir"], output_names=["fused"],
                          opset_version=ONNX_OPSET, dynamic_axes=dynamic, dynamo=False, do_constant_folding=True)


def library_versions() -> dict:
    versions = {"torch": torch.__version__}
    for name in ("onnx", "onnxruntime", "torch_tensorrt", "tensorrt"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def device_identity(device: torch.device) -> dict:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda}
    return {"cpu": "cpu"}


# ----- loading -----------------------------------------------------------------------------------------

@dataclass
class LoadedBackend:
    backend: Backend
    info: CheckpointInfo | None
    decisions: list[str] = field(default_factory=list)  # why this backend, how its artefact was obtained


def read_sidecar(path: Path) -> dict | None:
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise BackendError(f"{sidecar}: not valid JSON ({exc.msg}); re-export the model") from None
    if meta.get("format") not in FORMAT_BACKEND:
        raise BackendError(f"{sidecar}: unknown format {meta.get('format')!r}; expected one of "
                           f"{', '.join(FORMAT_BACKEND)}")
    return meta


def _load_exported(path: Path, meta: dict, backend: str, device: torch.device) -> LoadedBackend:
    natural = FORMAT_BACKEND[meta["format"]]
    if backend not in ("auto", natural):
        raise BackendError(f"{path} is a {meta['format']} export; backend {backend} cannot run it (use {natural} "
                           "or auto, or pass the source checkpoint instead)")
    info = CheckpointInfo(path, meta.get("arch", "?"), meta.get("config", {}), f"export:{meta['format']}", meta)
    reason = f"{path.name} is a {meta['format']} export (sidecar {path.name}.json)"
    if natural == "onnxruntime":
        return LoadedBackend(OnnxRuntimeBackend(path, device), info, [reason])
    if natural == "torchscript":
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # see script()
                module = torch.jit.load(str(path), map_location=device)
        except Exception as exc:
            raise BackendError(f"{path}: not a loadable TorchScript file: {str(exc).splitlines()[0]}") from None
        return LoadedBackend(TorchScriptBackend(module, device, meta.get("precision") == "fp16"), info, [reason])
    ok, why = available("tensorrt", device)
    if not ok:
        raise BackendError(f"{path} is a TensorRT engine but {why}")
    torch_tensorrt = _import_torch_tensorrt()
    try:
        module = torch_tensorrt.load(str(path)).module()
    except Exception as exc:
        raise BackendError(f"{path}: TensorRT cannot load this engine ({str(exc).splitlines()[0]}); engines are "
                           "specific to the GPU and TensorRT version: re-export it here") from None
    return LoadedBackend(TensorRTBackend(module, device, f"TensorRT engine, {meta.get('precision', 'fp32')}"),
                         info, [reason])


def _tensorrt_from_model(model: FusionModel, source: Path, device: torch.device, fp16: bool,
                         cache: ArtifactCache, force: bool, shape: tuple[int, int]) -> tuple[Backend, str]:
    torch_tensorrt = _import_torch_tensorrt()
    parts = {"kind": "tensorrt", "model_sha256": file_sha256(source), "tensorrt": library_versions().get("tensorrt"),
             "torch_tensorrt": torch_tensorrt.__version__, **device_identity(device),
             "precision": "fp16" if fp16 else "fp32", "shape": list(shape)}

    def build(path: Path) -> None:
        module = prepare_for_inference(model).to(device)
        example = [torch.rand(1, 1, *shape, device=device)] * 2
        compiled = torch_tensorrt.compile(module, ir="dynamo", inputs=example,
                                          enabled_precisions={torch.half if fp16 else torch.float})
        torch_tensorrt.save(compiled, str(path), inputs=example)

    module, status = cache.get_or_build(parts, ".ep", build, lambda p: torch_tensorrt.load(str(p)).module(), force)
    return TensorRTBackend(module, device, f"TensorRT engine, {'fp16' if fp16 else 'fp32'}"), status


def auto_candidates(device: torch.device) -> tuple[list[str], list[str]]:
    """Backends ``auto`` considers on this device, fastest kind first, and why the others were skipped.

    On a GPU: TensorRT, then ONNX Runtime's CUDA provider, then eager torch. On a CPU, ONNX Runtime
    and torch are both candidates and the faster one, measured, wins.
    """
    order = ["tensorrt", "onnxruntime", "torch"] if device.type == "cuda" else ["onnxruntime", "torch"]
    candidates, skipped = [], []
    for name in order:
        ok, why = available(name, device)
        if ok:
            candidates.append(name)
        else:
            skipped.append(f"skipped {name}: {why}")
    return candidates, skipped


def _time_backend(backend: Backend, shape: tuple[int, int] = (256, 320), repeats: int = 3) -> float:
    y = np.random.default_rng(0).random(shape, dtype=np.float32)
    backend.run_numpy(y, y)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        backend.run_numpy(y, y)
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


def load_backend(weights: str | os.PathLike, device: torch.device, backend: str = "auto", fp16: bool = False,
                 cache_dir: str | os.PathLike | None = None, force_rebuild: bool = False,
                 shape: tuple[int, int] = (512, 640)) -> LoadedBackend:
    """The backend for a model file; see the module docstring. ``shape`` is TensorRT's build shape."""
    if backend not in BACKENDS:
        raise BackendError(f"backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    path = Path(weights)
    meta = read_sidecar(path) if path.is_file() else None
    if meta is not None:
        return _load_exported(path, meta, backend, device)
    if path.suffix in (".onnx", ".engine", ".ts"):
        raise BackendError(f"{path}: exported model without its sidecar {path.name}.json (written by "
                           "training/export.py next to it); keep the two together")
    model, info = load_model(path)
    decisions: list[str] = []
    built: Backend | None = None
    status = ""
    if backend == "auto":
        candidates, decisions = auto_candidates(device)
        if device.type == "cuda":
            backend = candidates[0]
            decisions.append(f"chose {backend}: the fastest kind available on {device}")
        elif len(candidates) == 1:
            backend = candidates[0]
            decisions.append(f"chose {backend}: the only one available on cpu")
        else:  # CPU: measure rather than guess; which wins depends on the model and the machine
            trial = {name: _build_from_model(name, model, path, device, fp16, cache_dir, force_rebuild, shape)
                     for name in candidates}
            timings = {name: _time_backend(b) for name, (b, _) in trial.items()}
            backend = min(timings, key=timings.get)
            built, status = trial[backend]
            decisions.append("chose {} on cpu: measured {}".format(
                backend, ", ".join(f"{n} {t:.1f} ms" for n, t in timings.items()) + " per 320x256 frame"))
    if built is None:
        built, status = _build_from_model(backend, model, path, device, fp16, cache_dir, force_rebuild, shape)
    if status:
        decisions.append(status)
    return LoadedBackend(built, info, decisions)


def _build_from_model(name: str, model: FusionModel, source: Path, device: torch.device, fp16: bool,
                      cache_dir, force: bool, shape: tuple[int, int]) -> tuple[Backend, str]:
    ok, why = available(name, device)
    if not ok:
        raise BackendError(f"backend {name} is not available: {why}")
    if name == "torch":
        return TorchBackend(model, device, fp16), ""
    if name == "torchscript":
        return TorchScriptBackend(script(model), device, fp16), "scripted in memory"
    cache = ArtifactCache(cache_dir)
    if name == "onnxruntime":
        parts = {"kind": "onnx", "model_sha256": file_sha256(source), "opset": ONNX_OPSET,
                 "torch": torch.__version__, "precision": "fp16" if fp16 and device.type == "cuda" else "fp32"}
        return cache.get_or_build(parts, ".onnx", lambda p: export_onnx(model, p, fp16=parts["precision"] == "fp16"),
                                  lambda p: OnnxRuntimeBackend(p, device), force)
    return _tensorrt_from_model(model, source, device, fp16, cache, force, shape)
