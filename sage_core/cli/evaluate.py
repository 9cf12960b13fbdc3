"""Evaluate fusion methods on datasets: metrics tables, CSV, charts and mosaics.

    python training/evaluate.py --data ../shared/datasets/tno25 --data ../shared/datasets/m3fd_sage6 \\
        --method sage=weights:../shared/checkpoints/sage_official_student.pt \\
        --method ours=weights:sage_core/weights/affine_fuse_default.pt \\
        --method gff=baseline:gff --method average=baseline:average --method max=baseline:max \\
        --out runs/eval --mosaics 4

SPEC: a folder of fused images (paired by stem), weights:PATH, or baseline:average|max|gff.
Writes OUT/metrics.csv, OUT/summary.md, OUT/summary.json, OUT/metrics_*.png, OUT/mosaics/*.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sage_core.cli.common import run_command
from sage_core.errors import ConfigError
from sage_core.eval.evaluation import evaluate, parse_method
from sage_core.eval.reports import summary_markdown, write_reports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", type=Path, required=True, help="dataset folder (repeatable)")
    parser.add_argument("--method", action="append", required=True, help="NAME=SPEC (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--mosaics", type=int, default=3, help="mosaic images per dataset (default 3)")
    parser.add_argument("--device", default="auto", help="device for weights: methods")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.out.exists() and not args.out.is_dir():
            raise ConfigError(f"{args.out}: output path exists and is a file; expected a folder")
        names = [m.partition("=")[0] for m in args.method]
        if len(set(names)) != len(names):
            raise ConfigError(f"method names must be unique, got {', '.join(names)}")
        methods = [parse_method(text, args.device) for text in args.method]
        results = evaluate(args.data, methods, args.mosaics, args.out)
        write_reports(results, args.out)
        print(summary_markdown(results))
        print(f"wrote {args.out}/summary.md, summary.json, metrics.csv, metrics_*.png, mosaics/")
        return 0

    return run_command("evaluate", body)


if __name__ == "__main__":
    sys.exit(main())
