"""Checkpoints: our self-describing format, and recognition of the released SAGE state_dict.

Our format is a plain dict that ``torch.load(..., weights_only=True)`` reads::

    {"format": "sage_ros.checkpoint", "version": 1,
     "arch": "lite_fuse", "config": {...}, "state_dict": {...}, "meta": {...}}

so ``--weights PATH`` alone rebuilds the model. A bare ``state_dict`` whose keys
are those of the released SAGE student is recognised as that architecture.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sage_core.atomic import atomic_path
from sage_core.errors import CheckpointError
from sage_core.models import ARCHITECTURES, FusionModel, SageStudent, build_model

FORMAT = "sage_ros.checkpoint"
VERSION = 1
_MAX_LISTED = 8


@dataclass
class CheckpointInfo:
    """Where a model came from: file, architecture, config, and free-form training metadata."""

    path: Path | None
    arch: str
    config: dict
    kind: str  # "sage_ros" (our format) or "sage_official" (released bare state_dict)
    meta: dict = field(default_factory=dict)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming every missing, unexpected or wrongly shaped tensor."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shape {len(wrong_shape)}: {_listing(wrong_shape)}")
    if problems:
        raise CheckpointError(f"{source}: weights do not match architecture {getattr(model, 'arch', '?')}: "
                              + "; ".join(problems))


def _is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _looks_official(state: Mapping[str, torch.Tensor]) -> bool:
    """The released student's keys are unmistakable: module1..5, adjust_channels4/5, final_decoder."""
    return any(k.startswith("adjust_channels4.") for k in state) and any(
        k.startswith("final_decoder.") for k in state
    )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, CheckpointInfo]:
    """Read a checkpoint file into ``(state_dict, info)`` without building the model."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a checkpoint file, found a directory or special file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (corrupt, truncated, or not saved with torch.save "
            f"of tensors): {first_line}"
        ) from None
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        version = obj.get("version")
        if version != VERSION:
            raise CheckpointError(f"{path}: sage_ros checkpoint version {version!r}, this code reads {VERSION}")
        missing = [k for k in ("arch", "config", "state_dict") if k not in obj]
        if missing:
            raise CheckpointError(f"{path}: sage_ros checkpoint lacks {', '.join(missing)}")
        info = CheckpointInfo(path, obj["arch"], dict(obj["config"]), "sage_ros", dict(obj.get("meta") or {}))
        return dict(obj["state_dict"]), info
    if _is_tensor_dict(obj) and _looks_official(obj):
        return dict(obj), CheckpointInfo(path, SageStudent.arch, {}, "sage_official")
    what = f"a dict with keys {_listing(sorted(map(str, obj)))}" if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"{path}: not a sage_ros checkpoint nor the released SAGE student state_dict (found {what}); "
        f"expected 'format': {FORMAT!r} or keys like module1.0.weight ... final_decoder.0.weight"
    )


def load_model(path: str | os.PathLike) -> tuple[FusionModel, CheckpointInfo]:
    """Build the model a checkpoint describes and load its weights strictly, in eval mode."""
    state, info = read_checkpoint(path)
    if info.arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{path}: unknown architecture {info.arch!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    model = build_model(info.arch, info.config)
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, info


def save_checkpoint(model: FusionModel, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write ``model`` in our format atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": model.arch,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
