"""SAGE training: SPA teacher with SAM priors, bi-level triplet distillation of a small student.

    python training/distill.py --config training/configs/smoke.yaml --out runs/smoke --allow-random-sam
    python training/distill.py --config training/configs/official_teacher.yaml --out runs/lite run.steps=2000
    torchrun --nproc_per_node 4 training/distill.py --config training/configs/sage_vit_b.yaml --out runs/sage

Overrides are ``section.key=value`` (values parsed as YAML), applied on top of the config file.
Writes OUT/last.pt (the student, our checkpoint format: sage-fuse --weights OUT/last.pt),
OUT/student_stepN.pt, OUT/teacher_last.pt, OUT/state.pt (for --resume), OUT/tensorboard/,
OUT/config.yaml and OUT/summary.json (validation history, seconds per step).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sage_core.cli.common import run_command
from sage_core.errors import ConfigError
from sage_core.train.config import load_config
from sage_core.train.distiller import Distiller


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="YAML config (see training/configs/)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")
    parser.add_argument("--teacher", default=None,
                        help="shortcut: spa | sage-official:PATH | none (sets teacher.kind / teacher.checkpoint)")
    parser.add_argument("--allow-random-sam", action="store_true",
                        help="allow training with a randomly initialised SAM (smoke tests only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. run.steps=20 data.batch_size=8")
    return parser


def shortcut_overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides that ``--teacher`` and ``--allow-random-sam`` stand for, after the user's own."""
    overrides = list(args.overrides)
    if args.teacher:
        kind, _, path = args.teacher.partition(":")
        overrides.append(f"teacher.kind={kind}")
        if path:
            overrides.append(f"teacher.checkpoint={path}")
        if kind != "sage-official":  # a cache of a frozen teacher's outputs means nothing to another teacher
            overrides.append("teacher.output_cache=null")
    if args.allow_random_sam:
        overrides.append("sam.allow_random=true")
    return overrides


def _report(summary: dict) -> None:
    print(json.dumps({k: summary[k] for k in ("steps", "world_size", "seconds_per_step", "out")}))
    if summary["validation"]:
        first, last = summary["validation"][0], summary["validation"][-1]
        print("validation " + ", ".join(f"{k[4:]} {first[k]:.4f} -> {last[k]:.4f}" for k in first if k != "step"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or Path("runs") / args.config.stem

    def body() -> int:
        config = load_config(args.config, shortcut_overrides(args))
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: output path exists and is a file; expected a folder")
        distiller = Distiller(config, out, progress=not args.quiet)
        try:
            if args.resume:
                distiller.resume()
            summary = distiller.run()
        finally:
            distiller.close()
        if distiller.rank == 0:
            _report(summary)
        return 0

    return run_command("distill", body)


if __name__ == "__main__":
    sys.exit(main())
