"""``sage-fuse``: fuse thermal + visible image files (or folders paired by stem) into colour images.

    sage-fuse --ir DIR_OR_FILE --vis DIR_OR_FILE --out DIR [--weights PATH] [--device cpu|cuda] [--mosaic]

Writes ``OUT/<stem>.png`` per pair (and ``OUT/mosaic/<stem>.png``, thermal |
visible | fused, with ``--mosaic``). Every file is written under a temporary
name and renamed when complete. Bad input ends the run with one line naming the
file and what was expected, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from sage_core.cli.common import add_inference_arguments, inference_options, run_command
from sage_core.errors import SageError
from sage_core.fuser import Fuser
from sage_core.image_files import pair_images, read_pair, write_image_atomic
from sage_core.visualize import mosaic


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sage-fuse", description="Fuse thermal and visible images with a SAGE-family network.")
    parser.add_argument("--ir", required=True, type=Path, help="thermal image file, or folder of them")
    parser.add_argument("--vis", required=True, type=Path, help="visible image file, or folder (paired by stem)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--mosaic", action="store_true", help="also write thermal | visible | fused strips")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_inference_arguments(parser)
    return parser


def _prepare_out(out: Path, with_mosaic: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SageError(f"{out}: output path exists and is a file; expected a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        if with_mosaic:
            (out / "mosaic").mkdir(exist_ok=True)
    except OSError as exc:
        raise SageError(f"{out}: cannot create output folder: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    pairs = pair_images(args.ir, args.vis)
    _prepare_out(args.out, args.mosaic)
    fuser = Fuser.from_options(inference_options(args))
    seconds = 0.0
    for pair in tqdm(pairs, desc=f"fusing ({fuser.name}, {fuser.device})", unit="pair", disable=args.quiet):
        ir, vis = read_pair(pair)
        started = time.perf_counter()
        fused = fuser.fuse(ir, vis)
        seconds += time.perf_counter() - started
        write_image_atomic(args.out / f"{pair.stem}.png", fused)
        if args.mosaic:
            strip = mosaic([("thermal", ir), ("visible", vis), (f"fused ({fuser.name})", fused)])
            write_image_atomic(args.out / "mosaic" / f"{pair.stem}.png", strip)
    print(f"fused {len(pairs)} pair(s) into {args.out} with {fuser.description}: "
          f"{1000 * seconds / len(pairs):.1f} ms per pair", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("sage-fuse", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
