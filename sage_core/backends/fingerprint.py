"""What a compiled artefact depends on besides the checkpoint: the code that computes the model, the libraries,
the GPU and its driver. These are parts of the engine cache key (:mod:`sage_core.backends.cache`).

An edited model class with the same checkpoint computes something else, so the source of the model's
class (and of every class above it), of the code that prepares it for inference and of the backend that
compiles it is hashed into the key; so are the versions of sage_ros, torch and every compiler library, the
GPU's name and compute capability, and the CUDA driver.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch


@lru_cache(maxsize=1)
def driver_version() -> str:
    """The GPU driver's version: the NVIDIA kernel module's on a PC, the L4T release on a Jetson; '' if unknown."""
    for path, marker in (("/proc/driver/nvidia/version", "Kernel Module"), ("/etc/nv_tegra_release", "R")):
        try:
            first = Path(path).read_text(errors="replace").splitlines()[0]
        except (OSError, IndexError):
            continue
        if marker in first:
            return " ".join(first.split())[:160]
    return ""


def device_identity(device: torch.device) -> dict:
    """The parts of a cache key that name the device an artefact was built for."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda, "driver": driver_version()}
    return {"cpu": "cpu"}


def package_version() -> str:
    try:
        return metadata.version("sage_ros")
    except metadata.PackageNotFoundError:
        return "unknown"


def _source_files(objects: tuple[object, ...]) -> list[str]:
    modules = []
    for obj in objects:
        if inspect.ismodule(obj):
            modules.append(obj)
            continue
        for cls in inspect.getmro(obj) if inspect.isclass(obj) else (obj,):
            modules.append(sys.modules.get(getattr(cls, "__module__", "") or ""))
    # The model's own code: torch's classes (nn.Module) are covered by torch's version in the key.
    return sorted({m.__file__ for m in modules if getattr(m, "__file__", None)
                   and m.__name__.split(".")[0] not in ("torch", "builtins", "abc", "typing")})


def code_digest(*objects: object) -> str:
    """sha256 (24 hex digits) of the source files defining ``objects`` (classes with their bases, functions,
    modules): a change to any of them makes a new cache key."""
    digest = hashlib.sha256()
    for path in _source_files(objects):
        digest.update(Path(path).name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:24]


def library_version(name: str) -> str | None:
    """The installed version of a distribution or module, None when it is absent."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    for dist in (name, name.replace("_", "-")):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None
