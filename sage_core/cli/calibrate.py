"""``sage-calibrate``: estimate the thermal -> rgb homography of a rig and write it as node parameters.

    sage-calibrate --ir IR --vis VIS --out FILE.yaml [--model homography|affine|similarity] [--mosaic DIR]

IR and VIS are two image files, or two folders paired by file stem (a static rig: all pairs share
one transform, estimated jointly; pairs that disagree are dropped and reported). FILE.yaml is a
ROS 2 parameters file for ``ros2 launch sage_ros fusion.launch.py params_file:=FILE.yaml``:
``/**: ros__parameters: homography: [9 numbers]``, with the image sizes, the residual and the
confidence as comments. ``--mosaic DIR`` writes ``DIR/<stem>.png`` before/after pictures.
When the images cannot be registered with confidence, nothing is written: one line says why,
exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sage_core.atomic import atomic_path
from sage_core.cli.common import run_command
from sage_core.errors import SageError
from sage_core.image_files import pair_images, read_image, write_image_atomic
from sage_core.registration import MODELS, Registration, before_after, register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sage-calibrate", description="Estimate the thermal -> rgb homography of a camera rig.")
    parser.add_argument("--ir", required=True, type=Path, help="thermal image file, or folder of them")
    parser.add_argument("--vis", required=True, type=Path, help="visible image file, or folder (paired by stem)")
    parser.add_argument("--out", required=True, type=Path, help="ROS 2 parameters file to write (.yaml)")
    parser.add_argument("--model", default="homography", choices=MODELS,
                        help="transform model (default homography; similarity: scale, roll and shift only)")
    parser.add_argument("--mosaic", type=Path, default=None, help="folder for before/after pictures, one per pair")
    return parser


def yaml_float(value: float) -> str:
    """A float YAML reads back as a float: ROS 2 rejects a list that mixes integers (``1``) and doubles."""
    text = f"{value:.10g}"
    return text if any(c in text for c in ".en") else text + ".0"


def render_params(reg: Registration, sources: list[str]) -> str:
    """The parameters file: the homography for the node, the evidence as comments."""
    q = reg.quality
    values = ", ".join(yaml_float(float(v)) for v in reg.homography.ravel())
    used = sum(p.used for p in reg.pairs)
    lines = [
        "# Written by sage-calibrate: homography maps thermal pixels to rgb pixels (3x3, row-major).",
        f"# thermal image {reg.thermal_size[0]}x{reg.thermal_size[1]}, rgb image {reg.rgb_size[0]}x{reg.rgb_size[1]}, "
        f"model {reg.model}, {used} of {len(reg.pairs)} pair(s) used",
        f"# residual {q.residual_px:.2f} px (rgb scaled to 640 wide), confidence {q.confidence:.2f}, "
        f"{q.inliers} of {q.tried} patches agree",
        *[f"# pair: {source}" for source in sources[:20]],
        "/**:",
        "  ros__parameters:",
        f"    homography: [{values}]",
    ]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    if path.is_dir():
        raise SageError(f"{path}: is a folder; expected the path of a .yaml file to write")
    if not path.parent.is_dir():
        raise SageError(f"{path.parent}: folder not found (for the output file {path.name})")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _report(reg: Registration, stems: list[str]) -> str:
    q = reg.quality
    matrix = "\n".join("  [" + ", ".join(f"{v:12.6g}" for v in row) + "]" for row in reg.homography)
    lines = [f"homography (thermal {reg.thermal_size[0]}x{reg.thermal_size[1]} -> rgb "
             f"{reg.rgb_size[0]}x{reg.rgb_size[1]} pixels, {reg.model}):", matrix,
             f"residual {q.residual_px:.2f} px (rgb scaled to 640 wide), confidence {q.confidence:.2f} "
             f"({q.inliers} of {q.tried} patches agree)"]
    if len(reg.pairs) > 1:
        for pair in reg.pairs:
            residual = "-" if pair.residual_px is None else f"{pair.residual_px:.2f} px"
            state = "used" if pair.used else f"dropped ({pair.note or 'disagrees with the other pairs'})"
            lines.append(f"  {stems[pair.index]}: residual {residual}, {pair.inliers}/{pair.matches} matches, {state}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in (".yaml", ".yml"):
        raise SageError(f"{args.out}: expected a .yaml file name for the parameters file")
    pairs = pair_images(args.ir, args.vis)
    thermals = [read_image(pair.ir) for pair in pairs]
    rgbs = [read_image(pair.vis) for pair in pairs]
    reg = register(thermals, rgbs, args.model)
    _write_text(args.out, render_params(reg, [f"{p.ir.name} + {p.vis.name}" for p in pairs]))
    print(_report(reg, [p.stem for p in pairs]))
    if args.mosaic is not None:
        try:
            args.mosaic.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SageError(f"{args.mosaic}: cannot create the picture folder: {exc.strerror}") from None
        for pair, thermal, rgb in zip(pairs, thermals, rgbs):
            write_image_atomic(args.mosaic / f"{pair.stem}.png", before_after(thermal, rgb, reg.homography))
    print(f"wrote {args.out}; use it with: ros2 launch sage_ros fusion.launch.py params_file:={args.out}",
          file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("sage-calibrate", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
