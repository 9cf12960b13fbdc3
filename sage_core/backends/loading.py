"""From a model file and :class:`~sage_core.options.InferenceOptions` to a ready backend.

An exported file (its sidecar names the format) goes to the backend of its format; a checkpoint is
built into the backend asked for, or, with ``auto``, the fastest one here: on a GPU the fastest kind
available (TensorRT, ONNX Runtime, torch) that builds, a failed build or load falling back to the next
with the reason kept (:attr:`LoadedBackend.fallback`: the node logs it and puts it in /diagnostics); on a
CPU ONNX Runtime and torch are both built and the faster, measured, wins. Every decision is returned as a
line of text for the log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from sage_core.backends.base import Backend, BuildContext
from sage_core.backends.export_format import EXPORT_SUFFIXES, read_sidecar, sidecar_path
from sage_core.backends.registry import BACKEND_CHOICES, BACKENDS, FORMATS, backend_class
from sage_core.checkpoint import CheckpointInfo, load_model
from sage_core.errors import BackendError
from sage_core.models import FusionModel
from sage_core.options import InferenceOptions, resolve_device

log = logging.getLogger("sage_core.backends")

#: Backends ``auto`` tries, fastest kind first.
AUTO_ORDER = {"cuda": ("tensorrt", "onnxruntime", "torch"), "cpu": ("onnxruntime", "torch")}


@dataclass
class LoadedBackend:
    backend: Backend
    info: CheckpointInfo | None
    decisions: list[str] = field(default_factory=list)  # why this backend, how its artefact was obtained
    fallback: str = ""  # auto: why faster backends were not used although available (their build or load failed)


def auto_candidates(device: torch.device) -> tuple[list[str], list[str]]:
    """Backends ``auto`` considers on this device, fastest kind first, and why the others were skipped."""
    candidates, skipped = [], []
    for name in AUTO_ORDER[device.type]:
        ok, why = BACKENDS[name].available(device)
        if ok:
            candidates.append(name)
        else:
            skipped.append(f"skipped {name}: {why}")
    return candidates, skipped


def _cost(backend: Backend, shape: tuple[int, int] = (256, 320), repeats: int = 5) -> tuple[float, float]:
    """(CPU ms, wall ms) per frame, the best of ``repeats``. CPU time counts every thread the backend
    keeps busy: on a robot's few cores that, as much as latency, decides what else can run."""
    y = np.random.default_rng(0).random(shape, dtype=np.float32)
    backend.run_numpy(y, y)
    cpu, wall = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        backend.run_numpy(y, y)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return 1000 * min(cpu), 1000 * min(wall)


def _load_exported(path: Path, meta: dict, name: str, context: BuildContext) -> LoadedBackend:
    cls = FORMATS[meta["format"]]
    if name not in ("auto", cls.name):
        raise BackendError(f"{path} is a {meta['format']} export; backend {name} cannot run it (use {cls.name} "
                           "or auto, or pass the source checkpoint instead)")
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    info = CheckpointInfo(path, str(meta.get("arch", "?")), config, f"export:{meta['format']}", meta)
    reason = f"{path.name} is a {meta['format']} export (sidecar {sidecar_path(path).name})"
    return LoadedBackend(cls.from_file(path, meta, context), info, [reason])


def _try_build(name: str, model: FusionModel, context: BuildContext) -> tuple[Backend, str] | str:
    """(backend, status), or why it could not be built or loaded (one line)."""
    try:
        return BACKENDS[name].from_model(model, context)
    except Exception as exc:  # noqa: BLE001 - any failure of one backend is a reason to try the next
        if context.device.type == "cuda":
            torch.cuda.empty_cache()  # what a failed engine build held
        lines = str(exc).strip().splitlines() or [""]
        reason = f"{name} failed on {context.device}: {type(exc).__name__}: {lines[0][:400]}"
        log.warning("backend auto: %s; trying the next backend", reason)
        return reason


def _choose_auto(model: FusionModel, context: BuildContext) -> tuple[Backend, list[str], str]:
    """(backend, decisions, fallback): see the module docstring."""
    candidates, decisions = auto_candidates(context.device)
    failures: list[str] = []
    if context.device.type == "cuda" or len(candidates) == 1:
        for name in candidates:
            built = _try_build(name, model, context)
            if isinstance(built, str):
                failures.append(built)
                decisions.append(built)
                continue
            decisions.append(f"chose {name}: the fastest kind available on {context.device}"
                             + (" that built" if failures else ""))
            return built[0], decisions + ([built[1]] if built[1] else []), "; ".join(failures)
        raise BackendError(f"no backend could be built on {context.device}: {'; '.join(failures)}")
    # CPU: measure rather than guess; which wins depends on the model and the machine.
    trial = {}
    for name in candidates:
        built = _try_build(name, model, context)
        if isinstance(built, str):
            failures.append(built)
            decisions.append(built)
        else:
            trial[name] = built
    if not trial:
        raise BackendError(f"no backend could be built on {context.device}: {'; '.join(failures)}")
    costs = {name: _cost(built) for name, (built, _) in trial.items()}
    # CPU time is what the node's other work loses, latency what the robot waits: both count.
    name = min(costs, key=lambda n: sum(costs[n]))
    decisions.append("chose {} on cpu: measured {} per 320x256 frame".format(
        name, ", ".join(f"{n} {c:.1f} ms CPU / {w:.1f} ms" for n, (c, w) in costs.items())))
    status = trial[name][1]
    return trial[name][0], decisions + ([status] if status else []), "; ".join(failures)


def load_backend(options: InferenceOptions) -> LoadedBackend:
    """The backend for ``options.model_path``; see the module docstring."""
    if options.backend not in BACKEND_CHOICES:
        raise BackendError(f"backend {options.backend!r}; expected one of {', '.join(BACKEND_CHOICES)}")
    device = resolve_device(options.device)
    path = options.model_path
    context = BuildContext(path, device, options)
    if device.type == "cpu":  # process-wide pools (see resolve_threads): torch's and OpenCV's (colour, resizing)
        torch.set_num_threads(context.torch_threads)
        cv2.setNumThreads(context.threads)
    meta = read_sidecar(path, tuple(FORMATS)) if path.is_file() else None
    if meta is not None:
        return _load_exported(path, meta, options.backend, context)
    if path.suffix in EXPORT_SUFFIXES:
        raise BackendError(f"{path}: exported model without its sidecar {sidecar_path(path).name} (written by "
                           "training/export.py next to it); keep the two together")
    model, info = load_model(path)
    if options.backend == "auto":
        backend, decisions, fallback = _choose_auto(model, context)
        return LoadedBackend(backend, info, decisions, fallback)
    cls = backend_class(options.backend)
    ok, why = cls.available(device)
    if not ok:
        raise BackendError(f"backend {cls.name} is not available: {why}")
    backend, status = cls.from_model(model, context)
    return LoadedBackend(backend, info, [status] if status else [])
