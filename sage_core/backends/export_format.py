"""The export format: a model file written for one backend, and ``FILE.json`` beside it (the sidecar).

The sidecar says what the file is (``format``: torchscript, onnx or tensorrt; precision; shape;
source model and its sha256; architecture; library versions; the validation against PyTorch).
:func:`write_sidecar` (used by :mod:`sage_core.export`) and :func:`read_sidecar` (used by the
backend loader) are the only code that touches it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from sage_core.atomic import atomic_path
from sage_core.errors import BackendError

#: Suffixes of exported files that are never checkpoints: such a file without its sidecar is an error.
EXPORT_SUFFIXES = (".ts", ".onnx", ".ep", ".engine", ".plan")


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_sidecar(path: Path, meta: dict) -> None:
    """Write the sidecar of the export at ``path`` atomically."""
    with atomic_path(sidecar_path(path)) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def read_sidecar(path: Path, formats: tuple[str, ...]) -> dict | None:
    """The sidecar of ``path`` as a dict, None when there is none; BackendError when it is unusable."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackendError(f"{sidecar}: not valid JSON ({getattr(exc, 'msg', exc)}); re-export the model") from None
    except OSError as exc:
        raise BackendError(f"{sidecar}: cannot read it ({exc.strerror})") from None
    if not isinstance(meta, dict):
        raise BackendError(f"{sidecar}: expected a JSON object with a 'format' key, found a "
                           f"{type(meta).__name__}; re-export the model")
    if meta.get("format") not in formats:
        raise BackendError(f"{sidecar}: unknown format {meta.get('format')!r}; expected one of {', '.join(formats)}")
    return meta


def library_versions() -> dict:
    """Versions of the libraries an export depends on (recorded in its sidecar)."""
    versions = {"torch": torch.__version__}
    for name in ("onnx", "onnxruntime", "torch_tensorrt", "tensorrt"):
        with contextlib.suppress(ImportError):  # not installed: not part of the key
            versions[name] = __import__(name).__version__
    return versions
