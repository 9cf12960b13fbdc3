"""Evaluate fusion methods on datasets: metrics tables, CSV, charts and mosaics.

    python training/evaluate.py --data ../shared/datasets/tno25 --data ../shared/datasets/m3fd_sage6 \\
        --method sage=weights:../shared/checkpoints/sage_official_student.pt \\
        --method ours=weights:sage_core/weights/affine_fuse_default.pt \\
        --method gff=baseline:gff --method average=baseline:average --method max=baseline:max \\
        --out runs/eval --mosaics 4

SPEC: a folder of fused images (paired by stem), weights:PATH, or baseline:average|max|gff.
Writes OUT/metrics.csv, OUT/summary.md, OUT/summary.json, OUT/metrics_*.png, OUT/mosaics/*.png.
With --clips (folders of ir.mp4 + vis.mp4): the temporal stability of each fusing method and of the
inputs (docs/temporal.md) in OUT/temporal.md and OUT/temporal.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sage_core.cli.common import run_command
from sage_core.errors import ConfigError
from sage_core.eval.evaluation import evaluate, evaluate_sequences, parse_method, temporal_markdown
from sage_core.eval.reports import summary_markdown, write_reports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", type=Path, default=[], help="dataset folder (repeatable)")
    parser.add_argument("--clips", action="append", type=Path, default=[],
                        help="clip folder, ir.mp4 + vis.mp4 (repeatable): temporal stability")
    parser.add_argument("--clip-frames", type=int, default=0, help="frames per clip (default 0: all)")
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
        if not args.data and not args.clips:
            raise ConfigError("give at least one --data or --clips folder")
        methods = [parse_method(text, args.device) for text in args.method]
        if args.data:
            results = evaluate(args.data, methods, args.mosaics, args.out)
            write_reports(results, args.out)
            print(summary_markdown(results))
            print(f"wrote {args.out}/summary.md, summary.json, metrics.csv, metrics_*.png, mosaics/")
        if args.clips:
            temporal = evaluate_sequences(args.clips, methods, args.clip_frames or None)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "temporal.md").write_text(temporal_markdown(temporal))
            (args.out / "temporal.json").write_text(json.dumps(temporal, indent=2))
            print(temporal_markdown(temporal))
            print(f"wrote {args.out}/temporal.md, temporal.json")
        return 0

    return run_command("evaluate", body)


if __name__ == "__main__":
    sys.exit(main())
