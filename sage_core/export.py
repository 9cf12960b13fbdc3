"""Exporting a model for one backend: write the file, validate it against PyTorch, publish it atomically.

Every export is written under a temporary name with its sidecar (:mod:`sage_core.backends.export_format`),
loaded back through the same loader the node uses, compared with eager PyTorch on one image pair (the
first of a dataset folder the caller names, else a generated scene; the largest difference is printed
and stored in the sidecar), and only then renamed into place.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from sage_core.atomic import publish
from sage_core.backends import FORMATS, OnnxRuntimeBackend, TorchBackend
from sage_core.backends.export_format import library_versions, sidecar_path, write_sidecar
from sage_core.checkpoint import CheckpointInfo, file_sha256, load_model
from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.errors import ConfigError
from sage_core.fuser import Fuser
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.options import InferenceOptions, resolve_device
from sage_core.synthetic import SyntheticScene

PRECISIONS = ("fp32", "fp16")


def parse_shape(text: str | None) -> tuple[int, int] | None:
    """``HEIGHTxWIDTH`` -> (height, width); None stays None (dynamic)."""
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--shape {text!r}: expected HEIGHTxWIDTH such as 512x640") from None
    if height < 16 or width < 16:
        raise ConfigError(f"--shape {text}: height and width must be at least 16 pixels")
    return height, width


def validation_pair(shape: tuple[int, int] | None,
                    pair_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """The first pair of dataset folder ``pair_dir`` (``ir/`` and ``vis/``), else a generated 640x512 scene;
    resized to ``shape`` when the export has a fixed one."""
    if pair_dir is not None:
        first = dataset_pairs(pair_dir)[0]
        ir, vis = read_pair(first)
        name = f"{Path(pair_dir).name}/{first.stem}"
    else:
        frame = SyntheticScene(640, 512).frame(1.0)
        ir, vis, name = frame.thermal_mono8, frame.visible, "generated scene"
    if shape is not None:
        ir = cv2.resize(ir, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        vis = cv2.resize(vis, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return ir, vis, name


def _validate(path: Path, model, fmt: str, pair: tuple[np.ndarray, np.ndarray, str], device: torch.device) -> dict:
    """Run the export through the node's loader and eager PyTorch on one pair; the differences."""
    ir, vis, pair_name = pair
    check_device = device
    if fmt == "onnx" and device.type == "cuda" and not OnnxRuntimeBackend.available(device)[0]:
        check_device = torch.device("cpu")  # an onnxruntime without CUDA still checks the file
    exported = Fuser.from_options(InferenceOptions(model_file_path=path, device=str(check_device)))
    reference = Fuser(TorchBackend(model, check_device), info=CheckpointInfo(None, model.arch, model.config(), "eager"))
    y, gray = vis_to_luma_chroma(vis).y, ir_to_gray(ir)
    diff_luma = float(np.abs(exported.fuse_luminance(y, gray) - reference.fuse_luminance(y, gray)).max())
    diff_image = int(np.abs(exported.fuse(ir, vis).astype(int) - reference.fuse(ir, vis).astype(int)).max())
    return {"pair": pair_name, "size": f"{ir.shape[1]}x{ir.shape[0]}", "backend": exported.backend.name,
            "device": str(check_device), "max_abs_diff_luminance": diff_luma, "max_abs_diff_uint8": diff_image}


def export_model(model_file_path: str | os.PathLike, fmt: str, out: str | os.PathLike, precision: str = "fp32",
                 shape: tuple[int, int] | None = None, device: str = "auto",
                 check_pair: str | os.PathLike | None = None) -> dict:
    """Export, validate (on the first pair of dataset folder ``check_pair``, else a generated scene) and
    publish; returns the sidecar written beside ``out``. SageError on bad input."""
    out, source = Path(out), Path(model_file_path)
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder; expected an output file name")
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: output folder does not exist")
    backend = FORMATS[fmt]
    model, info = load_model(source)
    torch_device = resolve_device(device)
    pair = validation_pair(shape, check_pair)  # before the export: a bad folder fails fast
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=backend.file_suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        extra = backend.export(model, tmp, precision, shape, torch_device)
        meta = {"format": fmt, "precision": precision, "shape": list(shape) if shape else "dynamic",
                "source": str(source), "source_sha256": file_sha256(source), "arch": info.arch,
                "config": info.config, "library_versions": library_versions(),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **extra}
        write_sidecar(tmp, meta)
        meta["validation"] = _validate(tmp, model, fmt, pair, torch_device)
        write_sidecar(tmp, meta)
        publish(tmp, out)
        publish(sidecar_path(tmp), sidecar_path(out))
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_path(tmp).unlink(missing_ok=True)
    return meta
