"""Exporting a model for one backend: write the file, validate it against PyTorch, publish it atomically.

Every export is written under a temporary name with its sidecar (:mod:`sage_core.backends.export_format`),
loaded back through the same loader the node uses, compared with eager PyTorch on a real image pair
(the largest difference is printed and stored in the sidecar), and only then renamed into place.
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
from sage_core.backends.onnx_runtime import ONNX_OPSET
from sage_core.checkpoint import file_sha256, load_model
from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.errors import ConfigError
from sage_core.fuser import Fuser
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.options import DEFAULT_ENGINE_SHAPE, InferenceOptions, resolve_device
from sage_core.synthetic import SyntheticScene

PRECISIONS = ("fp32", "fp16")
#: A real pair for validation when ../shared is beside the checkout; else the generated scene.
SHARED_PAIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "m3fd_sage6"


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


def validation_pair(shape: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, str]:
    """A real pair when ../shared is present (resized to a fixed shape if one is given), else the generated scene."""
    if (SHARED_PAIR / "ir" / "00000.png").is_file():
        ir, vis = read_pair(dataset_pairs(SHARED_PAIR)[0])
        name = "m3fd_sage6/00000"
    else:
        frame = SyntheticScene(640, 512).frame(1.0)
        ir, vis, name = frame.thermal_mono8, frame.visible, "generated scene"
    if shape is not None:
        ir = cv2.resize(ir, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        vis = cv2.resize(vis, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return ir, vis, name


def _validate(path: Path, model, fmt: str, shape: tuple[int, int] | None, device: torch.device) -> dict:
    """Run the export through the node's loader and eager PyTorch on one pair; the differences."""
    ir, vis, pair_name = validation_pair(shape)
    check_device = device
    if fmt == "onnx" and device.type == "cuda" and not OnnxRuntimeBackend.available(device)[0]:
        check_device = torch.device("cpu")  # an onnxruntime without CUDA still checks the file
    exported = Fuser.from_options(InferenceOptions(model_file_path=path, device=str(check_device)))
    reference = Fuser(TorchBackend(model, check_device))
    y, gray = vis_to_luma_chroma(vis).y, ir_to_gray(ir)
    diff_luma = float(np.abs(exported.fuse_luminance(y, gray) - reference.fuse_luminance(y, gray)).max())
    diff_image = int(np.abs(exported.fuse(ir, vis).astype(int) - reference.fuse(ir, vis).astype(int)).max())
    return {"pair": pair_name, "size": f"{ir.shape[1]}x{ir.shape[0]}", "backend": exported.backend.name,
            "device": str(check_device), "max_abs_diff_luminance": diff_luma, "max_abs_diff_uint8": diff_image}


def export_model(model_file_path: str | os.PathLike, fmt: str, out: str | os.PathLike, precision: str = "fp32",
                 shape: tuple[int, int] | None = None, device: str = "auto") -> dict:
    """Export, validate and publish; returns the sidecar written beside ``out``. SageError on bad input."""
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
    if fmt == "tensorrt":
        shape = shape or DEFAULT_ENGINE_SHAPE
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=backend.file_suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        backend.export(model, tmp, precision, shape, torch_device)
        meta = {"format": fmt, "precision": precision, "shape": list(shape) if shape else "dynamic",
                "source": str(source), "source_sha256": file_sha256(source), "arch": info.arch,
                "config": info.config, "library_versions": library_versions(),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        if fmt == "onnx":
            meta["opset"] = ONNX_OPSET
        write_sidecar(tmp, meta)
        meta["validation"] = _validate(tmp, model, fmt, shape, torch_device)
        write_sidecar(tmp, meta)
        publish(tmp, out)
        publish(sidecar_path(tmp), sidecar_path(out))
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_path(tmp).unlink(missing_ok=True)
    return meta
