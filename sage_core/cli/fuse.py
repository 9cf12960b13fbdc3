"""``sage-fuse``: fuse thermal + visible image files (or folders paired by stem) into colour images.

    sage-fuse --ir DIR_OR_FILE --vis DIR_OR_FILE --out DIR [--weights PATH] [--device cpu|cuda] [--mosaic]
              [--rig RIG.yaml [--registration-distance M] [--depth DIR_OR_FILE]]

Writes ``OUT/<stem>.png`` per pair (and ``OUT/mosaic/<stem>.png``, thermal |
visible | fused, with ``--mosaic``). 16-bit and float thermal files (raw counts,
temperatures) go through the node's thermal normalisation, with the same settings
under the same names (``--thermal-normalization`` ...); each file is normalised on
its own (no smoothing over files). A rig with a baseline (``--rig``: extrinsics and both cameras'
camera_info files) is registered by its geometry at ``--registration-distance``, or per pixel by
``--depth`` images (``fuse_rig.py``). Every file is written under a temporary name
and renamed when complete. Bad input ends the run with one line naming the file
and what was expected, and exit status 2.

Other installed packages add modes by the entry-point group ``sage_fuse.modes``: a mode ``NAME``
takes over when ``--NAME`` is given (sage_ros registers ``bag``: ``sage-fuse --bag IN --out OUT``).
This package never imports them by name.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

from tqdm import tqdm

from sage_core.cli.common import add_inference_arguments, inference_options, run_command
from sage_core.cli.fuse_rig import RigFiles, add_rig_arguments
from sage_core.errors import FusionInputError, SageError
from sage_core.fuser import Fuser
from sage_core.image_files import pair_images, read_pair, write_image_atomic
from sage_core.pipeline import FramePipeline
from sage_core.thermal import METHODS, ThermalNormalizer, ThermalNormalizerConfig
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
    defaults = ThermalNormalizerConfig()
    group = parser.add_argument_group("16-bit and float thermal (the fusion node's parameters of the same names)")
    group.add_argument("--thermal-normalization", choices=METHODS, default=defaults.method)
    group.add_argument("--thermal-low-percentile", type=float, default=defaults.low_percentile)
    group.add_argument("--thermal-high-percentile", type=float, default=defaults.high_percentile)
    group.add_argument("--thermal-fixed-min", type=float, default=defaults.fixed_min)
    group.add_argument("--thermal-fixed-max", type=float, default=defaults.fixed_max)
    add_rig_arguments(parser)
    return parser


def thermal_config(args: argparse.Namespace) -> ThermalNormalizerConfig:
    """The node's normalisation settings; no smoothing or steadying, as files are not a sequence. Validated."""
    config = ThermalNormalizerConfig(args.thermal_normalization, args.thermal_low_percentile,
                                     args.thermal_high_percentile, args.thermal_fixed_min, args.thermal_fixed_max,
                                     smoothing=0.0, steadying=0.0)
    config.validate()
    return config


def _prepare_out(out: Path, with_mosaic: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SageError(f"{out}: output path exists and is a file; expected a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        if with_mosaic:
            (out / "mosaic").mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe"):  # before the model loads, not after
            pass
    except OSError as exc:
        raise SageError(f"{out}: cannot write to the output folder: {exc.strerror}") from None


def _fuse_one(pipeline: FramePipeline, pair, rig: RigFiles | None = None) -> tuple:
    """(thermal, visible, fused) of one pair; errors name the files."""
    if rig is None:
        ir, vis = read_pair(pair)
        depth, aligner = None, None
    else:
        ir, vis, depth = rig.read(pair)
        aligner = rig.aligner
    try:
        return ir, vis, pipeline.fuse(ir, vis, depth=depth, aligner=aligner)
    except FusionInputError as exc:
        raise FusionInputError(f"{pair.ir} + {pair.vis}: {exc}") from None


def _write(path: Path, image) -> None:
    try:
        write_image_atomic(path, image)
    except OSError as exc:
        raise SageError(f"{path}: cannot write it: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    pairs = pair_images(args.ir, args.vis)
    config = thermal_config(args)
    rig = RigFiles.from_args(args)
    _prepare_out(args.out, args.mosaic)
    fuser = Fuser.from_options(inference_options(args))
    pipeline = FramePipeline(fuser, ThermalNormalizer(config))
    seconds = 0.0
    for pair in tqdm(pairs, desc=f"fusing ({fuser.name}, {fuser.device})", unit="pair", disable=args.quiet):
        started = time.perf_counter()
        ir, vis, fused = _fuse_one(pipeline, pair, rig)
        seconds += time.perf_counter() - started
        _write(args.out / f"{pair.stem}.png", fused)
        if args.mosaic:
            strip = mosaic([("thermal", ir), ("visible", vis), (f"fused ({fuser.name})", fused)])
            _write(args.out / "mosaic" / f"{pair.stem}.png", strip)
    print(f"fused {len(pairs)} pair(s) into {args.out} with {fuser.description}: "
          f"{1000 * seconds / len(pairs):.1f} ms per pair (reading and fusing)", file=sys.stderr)
    return 0


#: Entry-point group of the other modes of sage-fuse: NAME = a module with ``main(argv)`` and ``build_parser()``.
MODES_GROUP = "sage_fuse.modes"


def _modes() -> dict[str, object]:
    """Installed modes: name -> entry point (loaded only when used)."""
    return {entry.name: entry for entry in entry_points(group=MODES_GROUP)}


def _help(modes: dict[str, object]) -> str:
    text = build_parser().format_help()
    for name, entry in sorted(modes.items()):
        text += f"\n{'=' * 100}\nWith --{name}:\n\n" + entry.load().build_parser().format_help()
    return text


def main(argv: list[str] | None = None) -> int:
    """Image files, or another installed mode when its flag is given; ``--help`` describes them all."""
    argv = sys.argv[1:] if argv is None else list(argv)
    modes = _modes()
    for name, entry in modes.items():
        if any(arg == f"--{name}" or arg.startswith(f"--{name}=") for arg in argv):
            return entry.load().main(argv)
    if "-h" in argv or "--help" in argv:
        print(_help(modes))
        return 0
    args = build_parser().parse_args(argv)
    return run_command("sage-fuse", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
