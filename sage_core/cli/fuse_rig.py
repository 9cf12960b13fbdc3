"""``sage-fuse --rig``: image files of a thermal + RGB rig with a baseline, registered by its geometry.

The rig file (``sage_core.rig_file``) gives the extrinsics and must name both cameras' camera_info files (image
files carry no intrinsics). Distorted cameras are rectified by their camera_info, as the node does; thermal is
registered at ``--registration-distance`` (the far plane by default), or per pixel by ``--depth``: depth images
on the RGB camera's grid (16-bit PNG in millimetres, or 32-bit float TIFF in metres; 0: no depth), paired with
the visible files by stem. The thermal and visible images may differ in size: each must be its camera_info's.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from sage_core.alignment import AlignmentConfig
from sage_core.errors import ConfigError, PairingError
from sage_core.image_files import IMAGE_EXTENSIONS, ImagePair, read_image
from sage_core.lens import LensModel
from sage_core.rectification import Rectifier
from sage_core.rig import CameraView, Rig
from sage_core.rig_alignment import RigAligner
from sage_core.rig_file import read_rig_file


def add_rig_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("a rig with a baseline (the fusion node's rig_file, registration_distance, "
                                      "use_depth)")
    group.add_argument("--rig", type=Path, metavar="RIG.yaml", help="rig file with the extrinsics and both cameras' "
                       "camera_info files: register by the rig's geometry")
    group.add_argument("--registration-distance", type=float, metavar="M", help="metres to the plane thermal is "
                       "registered at (default inf: the far plane)")
    group.add_argument("--depth", type=Path, metavar="DIR_OR_FILE", help="depth images on the visible camera's grid "
                       "(16-bit PNG mm, or float TIFF m), paired with the visible files by stem: register per pixel")


def _view(lens: LensModel) -> tuple[CameraView, Rectifier | None]:
    if not lens.needs_rectification:
        return CameraView.of(lens), None
    rectifier = Rectifier(lens)
    return CameraView.of(lens, rectifier.new_camera_matrix, rectifier.rotation), rectifier


class RigFiles:
    """The rig's aligner, the cameras' rectifiers and the depth files of one ``sage-fuse --rig`` run."""

    def __init__(self, args: argparse.Namespace) -> None:
        rig_file = read_rig_file(args.rig)
        missing = [key for key, lens in (("thermal_camera_info", rig_file.thermal_lens),
                                         ("rgb_camera_info", rig_file.rgb_lens)) if lens is None]
        if missing:
            raise ConfigError(f"{args.rig}: image files carry no intrinsics: the rig file must name "
                              f"{' and '.join(missing)} for sage-fuse")
        (thermal, self.thermal_rectifier), (rgb, self.rgb_rectifier) = _view(rig_file.thermal_lens), _view(
            rig_file.rgb_lens)
        distance = math.inf if args.registration_distance is None else args.registration_distance
        self.aligner = RigAligner(AlignmentConfig(), Rig(rig_file.extrinsics, thermal, rgb), distance)
        self.depths = _depth_files(args.depth) if args.depth else None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RigFiles | None:
        if args.rig is None:
            if args.depth or args.registration_distance is not None:
                raise ConfigError("--depth and --registration-distance need --rig (the rig's extrinsics)")
            return None
        return cls(args)

    def read(self, pair: ImagePair) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(thermal, visible, depth or None) of a pair, rectified where their camera is distorted."""
        thermal, visible = read_image(pair.ir), read_image(pair.vis)
        depth = None
        if self.depths is not None:
            path = self.depths.get(pair.stem, self.depths.get(None))
            if path is None:
                raise PairingError(f"{pair.vis}: no depth image with the stem {pair.stem!r} in the --depth folder")
            depth = read_image(path)
        if self.thermal_rectifier is not None:
            thermal = self.thermal_rectifier(thermal)
        if self.rgb_rectifier is not None:
            visible = self.rgb_rectifier(visible)
            depth = None if depth is None else self.rgb_rectifier(depth, nearest=True)
        return thermal, visible, depth


def _depth_files(path: Path) -> dict[str | None, Path]:
    """Stem -> depth file; one file is every pair's (key None: sage-fuse given one pair of files)."""
    if path.is_file():
        return {None: path}
    if not path.is_dir():
        raise PairingError(f"{path}: --depth not found (expected a depth image or a folder of them)")
    return {p.stem: p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
