"""Detector-in-the-loop training of the machines' model (a chroma output, starting as the plain average).

    python training/train_detection.py --config training/configs/detection_fuse.yaml --out runs/det
    python training/train_detection.py --config training/configs/detection_fuse.yaml --out runs/det optim.steps=200

Overrides are ``section.key=value`` (values parsed as YAML). Writes OUT/step_NNNNNN.pt at every validation (our
checkpoint format, with the validation scores in its meta), OUT/log.jsonl (losses, seconds per step, validation
records), OUT/summary.json and OUT/config.yaml. See sage_core/train/detection_fit.py and docs/downstream.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from sage_core.cli.common import run_command
from sage_core.train.detection_fit_config import load_fit_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_detection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="YAML config (training/configs/detection_fuse.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<config name>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars; log records printed as JSON lines")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. optim.steps=200 loss.anchor=0.5")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or Path("runs") / args.config.stem

    def body() -> int:
        from sage_core.train.detection_fit import DetectionFit

        config = load_fit_config(args.config, args.overrides)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))
        summary = DetectionFit(config, out, progress=not args.quiet).run()
        print(json.dumps({k: summary[k] for k in ("steps", "seconds", "seconds_per_step", "seconds_per_1000_windows",
                                                  "images", "out")}))
        return 0

    return run_command("train_detection", body)


if __name__ == "__main__":
    sys.exit(main())
