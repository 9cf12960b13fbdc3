"""The rig file: a thermal + RGB rig's extrinsics (and, optionally, intrinsics) in a small YAML.

    # The thermal camera's optical frame in the RGB camera's optical frame (x right, y down, z forward):
    # what `ros2 run tf2_ros tf2_echo <rgb optical frame> <thermal optical frame>` prints.
    translation: [0.05, 0.0, 0.0]        # metres
    rotation: [0.0, 0.0, 0.0, 1.0]       # unit quaternion x, y, z, w
    thermal_camera_info: thermal.yaml    # optional, relative to this file: intrinsics for a camera that
    rgb_camera_info: rgb.yaml            # publishes no camera_info (and for sage-fuse's image files)

or, from ROS's stereo calibration (``camera_calibration``'s stereo calibrator with a heated checkerboard
writes one camera_info file per camera, each with its R and P), only the two camera_info files: the
extrinsics then come from their R and P (:func:`sage_core.rig.extrinsics_from_stereo`). Every problem is
a ConfigError naming the file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sage_core.camera_info_file import read_camera_info, read_yaml_mapping
from sage_core.errors import ConfigError
from sage_core.lens import LensModel
from sage_core.rig import RigExtrinsics, extrinsics_from_stereo, quaternion_from_rotation

KEYS = ("translation", "rotation", "thermal_camera_info", "rgb_camera_info")


@dataclass(frozen=True)
class RigFile:
    """A rig file's content: the extrinsics, and each camera's lens where the file names one."""

    path: Path
    extrinsics: RigExtrinsics
    thermal_lens: LensModel | None = None
    rgb_lens: LensModel | None = None


def _numbers(doc: dict, key: str, count: int, path: Path) -> list[float]:
    values = doc[key]
    if not isinstance(values, list) or len(values) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{path}: {key} must be a list of {count} numbers, got {values!r}")
    return [float(v) for v in values]


def _lens(doc: dict, key: str, path: Path) -> LensModel | None:
    name = doc.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: {key} must be the path of a camera_info YAML file, got {name!r}")
    try:
        return read_camera_info(path.parent / name)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {key}: {exc}") from None


def read_rig_file(path: str | os.PathLike) -> RigFile:
    """The rig of a rig file (see the module docstring); ConfigError says what is wrong and where."""
    path = Path(path)
    doc = read_yaml_mapping(path, "rig file", f"a mapping with {', '.join(KEYS)}")
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(KEYS)}")
    thermal, rgb = _lens(doc, "thermal_camera_info", path), _lens(doc, "rgb_camera_info", path)
    given = [key for key in ("translation", "rotation") if key in doc]
    if given == ["translation", "rotation"]:
        extrinsics = RigExtrinsics.from_quaternion(_numbers(doc, "translation", 3, path),
                                                   _numbers(doc, "rotation", 4, path), str(path))
    elif given:
        raise ConfigError(f"{path}: {given[0]} without {({'translation', 'rotation'} - set(given)).pop()}: give both "
                          "(translation in metres, rotation as a quaternion x, y, z, w), or neither and the two "
                          "camera_info files of a stereo calibration")
    elif thermal is not None and rgb is not None:
        extrinsics = extrinsics_from_stereo(thermal, rgb)
    else:
        raise ConfigError(f"{path}: no extrinsics: give translation and rotation, or thermal_camera_info and "
                          "rgb_camera_info from camera_calibration's stereo calibrator (with R and P)")
    return RigFile(path, extrinsics, thermal, rgb)


def _numbers_text(values) -> str:
    return ", ".join(f"{float(v):.9g}" for v in values)


def rig_yaml(extrinsics: RigExtrinsics, thermal_camera_info: str | None = None,
             rgb_camera_info: str | None = None) -> str:
    """A rig file for ``extrinsics`` (quaternion from the rotation matrix), naming the camera_info files given."""
    q = quaternion_from_rotation(extrinsics.rotation)
    lines = ["# thermal optical frame in the rgb optical frame (tf2_echo <rgb optical frame> <thermal optical frame>)",
             f"translation: [{_numbers_text(extrinsics.translation)}]  # metres",
             f"rotation: [{_numbers_text(q)}]  # quaternion x, y, z, w"]
    lines += [f"{key}: {value}" for key, value in (("thermal_camera_info", thermal_camera_info),
                                                   ("rgb_camera_info", rgb_camera_info)) if value]
    return "\n".join(lines) + "\n"
