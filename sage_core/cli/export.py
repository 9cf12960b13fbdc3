"""Export a fusion model to TorchScript, ONNX or TensorRT, validated against PyTorch, with a sidecar JSON.

    python training/export.py --model-file-path sage_core/weights/affine_fuse_default.pt --format onnx --out model.onnx
    python training/export.py --model-file-path ../shared/checkpoints/sage_official_student.pt --format torchscript \\
        --out sage.ts
    python training/export.py --model-file-path model.pt --format tensorrt --out model.ep \\
        --precision fp16 --shape 512x640

ONNX uses opset 17 with dynamic height and width (unless --shape fixes them), is checked with
onnx.checker and run in ONNX Runtime against PyTorch on one image pair (the first of --check-pair
DIR, e.g. ../shared/datasets/m3fd_sage6, else a generated scene); the largest difference is printed
and stored. Every output is written under a temporary name and renamed when complete,
with FILE.json beside it (source sha256, format, precision, shape, library versions, validation),
which sage-fuse --model-file-path FILE and the node's model_file_path read to pick the backend.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sage_core.backends.registry import FORMATS
from sage_core.cli.common import run_command
from sage_core.export import PRECISIONS, export_model, parse_shape


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-file-path", "--weights", dest="model_file_path", type=Path, required=True,
                        help="our checkpoint or the released student")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--out", type=Path, required=True, help="output file (its sidecar is FILE.json)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--shape", default=None, help="fixed input HEIGHTxWIDTH (default: dynamic; TensorRT 512x640)")
    parser.add_argument("--device", default="auto", help="device for TensorRT builds and validation")
    parser.add_argument("--check-pair", type=Path, default=None, metavar="DIR",
                        help="dataset folder (ir/ and vis/) whose first pair checks the export against PyTorch "
                        "(default: a generated 640x512 scene)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        meta = export_model(args.model_file_path, args.format, args.out, args.precision, parse_shape(args.shape),
                            args.device, check_pair=args.check_pair)
        check = meta["validation"]
        print(f"wrote {args.out} ({args.format}, {args.precision}, shape {meta['shape']}) and {args.out}.json; "
              f"against PyTorch on {check['pair']} ({check['size']}) through {check['backend']} on "
              f"{check['device']}: max |difference| {check['max_abs_diff_luminance']:.2e} in luminance, "
              f"{check['max_abs_diff_uint8']} grey level(s) in the fused image")
        return 0

    return run_command("export", body)


if __name__ == "__main__":
    sys.exit(main())
