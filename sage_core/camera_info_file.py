"""camera_info YAML files, as ROS's camera_calibration writes them and camera_info_manager loads them.

    image_width: 640
    image_height: 512
    camera_name: thermal
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [...]}

Absent optional keys take camera_calibration_parsers' defaults: no distortion, R identity, P unset.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sage_core.errors import ConfigError
from sage_core.lens import PLUMB_BOB, LensModel

#: key -> (rows, cols) it must have; None: any (a 1 x N distortion vector).
_MATRICES = {"camera_matrix": (3, 3), "distortion_coefficients": None, "rectification_matrix": (3, 3),
             "projection_matrix": (3, 4)}


def _matrix(doc: dict, key: str, path: Path) -> list[float] | None:
    """The ``data`` of matrix ``key`` (None when absent), checked against its rows and cols."""
    entry = doc.get(key)
    if entry is None:
        return None
    shape = _MATRICES[key]
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), list):
        raise ConfigError(f"{path}: {key} must be a mapping with rows, cols and a data list, got {entry!r}")
    data, rows, cols = entry["data"], entry.get("rows"), entry.get("cols")
    if shape is not None and (rows, cols) != shape:
        raise ConfigError(f"{path}: {key} must be {shape[0]}x{shape[1]} (rows, cols), got {rows}x{cols}")
    if isinstance(rows, int) and isinstance(cols, int) and rows * cols != len(data):
        raise ConfigError(f"{path}: {key} says {rows}x{cols} but its data has {len(data)} values")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        raise ConfigError(f"{path}: {key}: data must be numbers, got {data}")
    return [float(v) for v in data]


def read_yaml_mapping(path: Path, what: str, expected: str) -> dict:
    """The mapping a ``what`` YAML file holds (a camera_info file, a rig file); ConfigError naming the file when
    it cannot be read, is not YAML, or holds something else than a mapping (``expected`` says what)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not a YAML file: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected {expected}")
    return doc


def read_camera_info(path: Path) -> LensModel:
    """The lens of a camera_info YAML file (ConfigError naming the file and the key when it cannot be used)."""
    path = Path(path)
    doc = read_yaml_mapping(path, "camera_info file", "a camera_info YAML mapping (image_width, camera_matrix, ...)")
    missing = [key for key in ("image_width", "image_height", "camera_matrix") if key not in doc]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}; expected a camera_info file as camera_calibration "
                          "writes it")
    d = _matrix(doc, "distortion_coefficients", path) or []
    r = _matrix(doc, "rectification_matrix", path) or [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    p = _matrix(doc, "projection_matrix", path) or [0.0] * 12
    model = doc.get("distortion_model", PLUMB_BOB)
    if not isinstance(model, str):
        raise ConfigError(f"{path}: distortion_model must be a name, got {model!r}")
    return LensModel(width=doc["image_width"], height=doc["image_height"], distortion_model=model, d=d,
                     k=_matrix(doc, "camera_matrix", path), r=r, p=p, source=str(path))


def camera_info_yaml(lens: LensModel, camera_name: str = "camera") -> str:
    """``lens`` as a camera_info YAML file (the layout camera_calibration writes; binning is not part of it)."""

    def matrix(key: str, values: tuple[float, ...], rows: int) -> list[str]:
        numbers = ", ".join(f"{v:.10g}" for v in values)
        return [f"{key}:", f"  rows: {rows}", f"  cols: {len(values) // rows}", f"  data: [{numbers}]"]

    lines = [f"image_width: {lens.width}", f"image_height: {lens.height}", f"camera_name: {camera_name}",
             *matrix("camera_matrix", lens.k, 3), f"distortion_model: {lens.distortion_model}",
             *matrix("distortion_coefficients", lens.d, 1), *matrix("rectification_matrix", lens.r, 3),
             *matrix("projection_matrix", lens.p, 3)]
    return "\n".join(lines) + "\n"
