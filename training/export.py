"""Export a fusion model to TorchScript, ONNX or TensorRT, validated against PyTorch, with a sidecar JSON.

    python training/export.py --weights sage_core/weights/affine_fuse_default.pt --format onnx --out model.onnx
    python training/export.py --weights ../shared/checkpoints/sage_official_student.pt --format torchscript \\
        --out sage.ts
    python training/export.py --weights model.pt --format tensorrt --out model.ep --precision fp16 --shape 512x640

ONNX uses opset 17 with dynamic height and width (unless --shape fixes them), is checked with
onnx.checker and run in ONNX Runtime against PyTorch on a real image pair; the largest difference
is printed and stored. Every output is written under a temporary name and renamed when complete,
with FILE.json beside it (source sha256, format, precision, shape, library versions, validation),
which sage-fuse --weights FILE and the node's model_file_path read to pick the backend.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sage_core.atomic import atomic_path, publish  # noqa: E402
from sage_core.checkpoint import file_sha256, load_model  # noqa: E402
from sage_core.color import ir_to_gray, vis_to_luma_chroma  # noqa: E402
from sage_core.data import dataset_pairs, read_pair  # noqa: E402
from sage_core.errors import SageError  # noqa: E402
from sage_core.fuser import Fuser, resolve_device  # noqa: E402
from sage_core.runtime import (ONNX_OPSET, BackendError, TorchBackend, available, export_onnx,  # noqa: E402
                               export_torchscript, library_versions, load_backend)
from sage_core.synthetic import SyntheticScene  # noqa: E402

FORMATS = {"torchscript": ".ts", "onnx": ".onnx", "tensorrt": ".ep"}
SHARED_PAIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "m3fd_sage6"


def parse_shape(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SageError(f"--shape {text!r}: expected HEIGHTxWIDTH such as 512x640") from None
    if height < 16 or width < 16:
        raise SageError(f"--shape {text}: height and width must be at least 16 pixels")
    return height, width


def validation_pair(shape: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, str]:
    """A real pair when ../shared is present (resized to a fixed shape if one is given), else the generated scene."""
    import cv2

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


def write_atomic_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="our checkpoint or the released student")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--out", type=Path, required=True, help="output file (its sidecar is FILE.json)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    parser.add_argument("--shape", default=None, help="fixed input HEIGHTxWIDTH (default: dynamic; TensorRT 512x640)")
    parser.add_argument("--device", default="auto", help="device for TensorRT builds and validation")
    args = parser.parse_args(argv)
    tmp_path = None
    try:
        shape = parse_shape(args.shape)
        if args.out.is_dir():
            raise SageError(f"{args.out}: is a folder; expected an output file name")
        if not args.out.parent.is_dir():
            raise SageError(f"{args.out.parent}: output folder does not exist")
        model, info = load_model(args.weights)
        device = resolve_device(args.device)
        if args.format == "torchscript" and args.precision == "fp16":
            raise SageError("TorchScript exports are fp32; enable fp16 at run time on a GPU (enable_fp16 / --fp16)")
        if args.format == "tensorrt":
            ok, why = available("tensorrt", device)
            if not ok:
                raise BackendError(f"cannot export to TensorRT: {why}")
        fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", suffix=FORMATS[args.format], dir=args.out.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        if args.format == "torchscript":
            export_torchscript(model, tmp_path)
        elif args.format == "onnx":
            export_onnx(model, tmp_path, shape, fp16=args.precision == "fp16")
            import onnx

            try:
                onnx.checker.check_model(onnx.load(str(tmp_path)), full_check=True)
            except onnx.checker.ValidationError as exc:
                raise SageError(f"the exported ONNX model fails onnx.checker: {str(exc).splitlines()[0]}") from None
        else:
            loaded = load_backend(args.weights, device, "tensorrt", args.precision == "fp16",
                                  cache_dir=args.out.parent, force_rebuild=True, shape=shape or (512, 640))
            import torch_tensorrt

            example = [torch.rand(1, 1, *(shape or (512, 640)), device=device)] * 2
            torch_tensorrt.save(loaded.backend.module, str(tmp_path), inputs=example)
        meta = {
            "format": args.format, "precision": args.precision,
            "shape": list(shape) if shape else ("512x640 build shape" if args.format == "tensorrt" else "dynamic"),
            "source": str(args.weights), "source_sha256": file_sha256(args.weights), "arch": info.arch,
            "config": info.config, "library_versions": library_versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        if args.format == "onnx":
            meta["opset"] = ONNX_OPSET
        write_atomic_json(tmp_path.with_name(tmp_path.name + ".json"), meta)
        # Validate the artefact through the same loader the node uses, against eager PyTorch.
        ir, vis, pair_name = validation_pair(shape)
        exported = Fuser.from_weights(tmp_path, device=device)
        reference = Fuser(TorchBackend(model, device))
        y, gray = vis_to_luma_chroma(vis).y, ir_to_gray(ir)
        diff_luma = float(np.abs(exported.fuse_luminance(y, gray) - reference.fuse_luminance(y, gray)).max())
        diff_image = int(np.abs(exported.fuse(ir, vis).astype(int) - reference.fuse(ir, vis).astype(int)).max())
        meta["validation"] = {"pair": pair_name, "size": f"{ir.shape[1]}x{ir.shape[0]}",
                              "backend": exported.backend.name, "max_abs_diff_luminance": diff_luma,
                              "max_abs_diff_uint8": diff_image}
        write_atomic_json(tmp_path.with_name(tmp_path.name + ".json"), meta)
        publish(tmp_path, args.out)
        publish(tmp_path.with_name(tmp_path.name + ".json"), args.out.with_name(args.out.name + ".json"))
        tmp_path = None
    except SageError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
            tmp_path.with_name(tmp_path.name + ".json").unlink(missing_ok=True)
    print(f"wrote {args.out} ({args.format}, {args.precision}, shape {meta['shape']}) and {args.out}.json; "
          f"against PyTorch on {pair_name} ({meta['validation']['size']}) through {meta['validation']['backend']}: "
          f"max |difference| {diff_luma:.2e} in luminance, {diff_image} grey level(s) in the fused image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
