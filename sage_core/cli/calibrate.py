"""``sage-calibrate``: estimate the thermal -> rgb homography of a rig and write it as node parameters.

    sage-calibrate --ir IR --vis VIS --out FILE.yaml [--model homography|affine|similarity] [--mosaic DIR]
                   [--thermal-info FILE] [--rgb-info FILE]

IR and VIS are two image files, or two folders paired by file stem (a static rig: all pairs share
one transform, estimated jointly; pairs that disagree are dropped and reported). FILE.yaml is a
ROS 2 parameters file for ``ros2 launch sage_ros fusion.launch.py params_file:=FILE.yaml``:
``/**: ros__parameters: homography: [9 numbers]``, with the image sizes, the residual and the
confidence as comments. ``--mosaic DIR`` writes ``DIR/<stem>.png`` before/after pictures.
When the images cannot be registered with confidence, nothing is written: one line says why,
exit status 2.

``--thermal-info`` / ``--rgb-info``: the camera's camera_info YAML (camera_calibration's file). A
distorted camera's images are rectified with it before registration (sage_core.rectification), as the
node rectifies with the camera_info it receives; the homography then maps rectified thermal pixels
to rectified rgb pixels, and the parameters file says so in a comment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sage_core.atomic import atomic_path
from sage_core.camera_info_file import read_camera_info
from sage_core.cli.common import run_command
from sage_core.errors import FusionInputError, SageError
from sage_core.image_files import pair_images, read_image, write_image_atomic
from sage_core.rectification import Rectifier
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
    for camera in ("thermal", "rgb"):
        parser.add_argument(f"--{camera}-info", type=Path, default=None, metavar="FILE",
                            help=f"the {camera} camera's camera_info YAML (as camera_calibration writes it): its "
                                 f"images are rectified with it before registration, as the node does with "
                                 f"{camera}/camera_info")
    return parser


def yaml_float(value: float) -> str:
    """A float YAML reads back as a float: ROS 2 rejects a list that mixes integers (``1``) and doubles."""
    text = f"{value:.10g}"
    return text if any(c in text for c in ".en") else text + ".0"


def render_params(reg: Registration, sources: list[str], rectification: Sequence[str] = ()) -> str:
    """The parameters file: the homography for the node, the evidence (and how images were rectified) as comments."""
    q = reg.quality
    values = ", ".join(yaml_float(float(v)) for v in reg.homography.ravel())
    used = sum(p.used for p in reg.pairs)
    lines = [
        "# Written by sage-calibrate: homography maps thermal pixels to rgb pixels (3x3, row-major).",
        f"# thermal image {reg.thermal_size[0]}x{reg.thermal_size[1]}, rgb image {reg.rgb_size[0]}x{reg.rgb_size[1]}, "
        f"model {reg.model}, {used} of {len(reg.pairs)} pair(s) used",
        f"# residual {q.residual_px:.2f} px (rgb scaled to 640 wide), confidence {q.confidence:.2f}, "
        f"{q.inliers} of {q.tried} patches agree",
        *[f"# {note}" for note in rectification],
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


def _rectified(images: list[np.ndarray], files: list[Path], info: Path | None, camera: str
               ) -> tuple[list[np.ndarray], str | None, bool]:
    """The images rectified with the camera_info file ``info`` (as they are without one), what was done, and
    whether they were rectified."""
    if info is None:
        return images, None, False
    lens = read_camera_info(info)
    if not lens.needs_rectification:
        return images, f"{camera}: {info} has no distortion; images used as they are", False
    rectifier = Rectifier(lens)
    out = []
    for image, file in zip(images, files):
        try:
            out.append(rectifier(image))
        except FusionInputError as exc:
            raise SageError(f"{file}: {exc}") from None
    k = rectifier.new_camera_matrix
    return out, (f"{camera}: rectified with {info} ({lens.distortion_model}), rectified camera matrix fx {k[0, 0]:.2f} "
                 f"fy {k[1, 1]:.2f} cx {k[0, 2]:.2f} cy {k[1, 2]:.2f}"), True


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in (".yaml", ".yml"):
        raise SageError(f"{args.out}: expected a .yaml file name for the parameters file")
    pairs = pair_images(args.ir, args.vis)
    thermals, thermal_note, thermal_done = _rectified([read_image(p.ir) for p in pairs], [p.ir for p in pairs],
                                                      args.thermal_info, "thermal")
    rgbs, rgb_note, rgb_done = _rectified([read_image(p.vis) for p in pairs], [p.vis for p in pairs], args.rgb_info,
                                          "rgb")
    notes = [note for note in (thermal_note, rgb_note) if note is not None]
    if thermal_done or rgb_done:
        # The node must see the same pixels: it rectifies a camera whose camera_info has distortion.
        notes.insert(0, "the homography maps rectified thermal pixels to rectified rgb pixels (images of a distorted "
                        "camera rectified with its camera_info before registration, as the node does)")
    reg = register(thermals, rgbs, args.model)
    _write_text(args.out, render_params(reg, [f"{p.ir.name} + {p.vis.name}" for p in pairs], notes))
    print(_report(reg, [p.stem for p in pairs]))
    for note in notes:
        print(note)
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
