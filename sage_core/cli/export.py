"""Export a fusion model to TorchScript, ONNX or TensorRT, validated against PyTorch, with a sidecar JSON;
or rehearse a GPU build on the CPU.

    python training/export.py --model-file-path sage_core/weights/affine_fuse_default.pt --format onnx --out model.onnx
    python training/export.py --model-file-path ../shared/checkpoints/sage_official_student.pt --format torchscript \\
        --out sage.ts
    python training/export.py --model-file-path model.pt --format tensorrt --out model.ep --precision fp16
    python training/export.py --rehearse tensorrt        # on any machine: what a TensorRT build compiles, checked

ONNX uses opset 17 with dynamic height and width (unless --shape fixes them), is checked with
onnx.checker and run in ONNX Runtime against PyTorch on one image pair (the first of --check-pair
DIR, e.g. ../shared/datasets/m3fd_sage6, else a generated scene); the largest difference is printed
and stored. TensorRT (a CUDA machine with torch-tensorrt) builds an engine for frames from 32x32 to
1920x1200, tuned at 640x512 (--shape: that size only), refused unless it is within 2 grey levels of
PyTorch at its smallest, tuned and largest size. Every output is written under a temporary name and
renamed when complete, with FILE.json beside it (source sha256, format, precision, shape, profile, library
versions, validation), which sage-fuse --model-file-path FILE and the node's model_file_path read to pick
the backend.

--rehearse tensorrt|onnx builds, on the CPU, what the GPU build compiles (the torch.export program
torch-tensorrt gets, or the ONNX file ONNX Runtime's TensorRT provider gets), runs it at the profile's
smallest, tuned and largest size on different random visible and thermal images, prints a table of its
differences from eager PyTorch and exits 1 when one is above 1e-5 or a size is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sage_core.backends.engine_profile import ShapeProfile
from sage_core.backends.registry import FORMATS
from sage_core.backends.rehearsal import TARGETS, rehearse
from sage_core.checkpoint import load_model
from sage_core.cli.common import run_command
from sage_core.export import PRECISIONS, export_model, parse_shape
from sage_core.options import DEFAULT_ENGINE_SHAPE, DEFAULT_WEIGHTS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-file-path", "--weights", dest="model_file_path", type=Path, default=None,
                        help="our checkpoint or the released student (required to export; --rehearse: default the "
                        "shipped model)")
    parser.add_argument("--format", choices=sorted(FORMATS))
    parser.add_argument("--out", type=Path, help="output file (its sidecar is FILE.json)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--shape", default=None,
                        help="fixed input HEIGHTxWIDTH (default: dynamic; a TensorRT engine takes heights 32-1200 and "
                        "widths 32-1920, tuned at 512x640)")
    parser.add_argument("--device", default="auto", help="device for TensorRT builds and validation")
    parser.add_argument("--check-pair", type=Path, default=None, metavar="DIR",
                        help="dataset folder (ir/ and vis/) whose first pair checks the export against PyTorch "
                        "(default: a generated 640x512 scene)")
    parser.add_argument("--rehearse", choices=TARGETS, default=None,
                        help="build on the CPU what a GPU build of this format compiles, run it against PyTorch at "
                        "the profile's min, opt and max shapes, print the table; exit 1 above 1e-5 (writes nothing)")
    return parser


def _rehearse(args: argparse.Namespace) -> int:
    path = args.model_file_path or DEFAULT_WEIGHTS
    shape = parse_shape(args.shape)
    profile = ShapeProfile.fixed(shape) if shape else ShapeProfile.around(DEFAULT_ENGINE_SHAPE)
    model, info = load_model(path)
    result = rehearse(model, args.rehearse, profile)
    print(result.report(f"{path.name} ({info.arch})"), flush=True)
    return 0 if result.passed else 1


def _export(args: argparse.Namespace) -> int:
    meta = export_model(args.model_file_path, args.format, args.out, args.precision, parse_shape(args.shape),
                        args.device, check_pair=args.check_pair)
    check = meta["validation"]
    print(f"wrote {args.out} ({args.format}, {args.precision}, shape {meta['shape']}) and {args.out}.json; "
          f"against PyTorch on {check['pair']} ({check['size']}) through {check['backend']} on "
          f"{check['device']}: max |difference| {check['max_abs_diff_luminance']:.2e} in luminance, "
          f"{check['max_abs_diff_uint8']} grey level(s) in the fused image")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rehearse is None:
        missing = [flag for flag, value in (("--model-file-path", args.model_file_path), ("--format", args.format),
                                            ("--out", args.out)) if value is None]
        if missing:
            parser.error(f"the following arguments are required to export: {', '.join(missing)} (or --rehearse)")
    return run_command("export", lambda: _rehearse(args) if args.rehearse else _export(args))


if __name__ == "__main__":
    sys.exit(main())
