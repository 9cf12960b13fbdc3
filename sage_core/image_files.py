"""Image files: reading, atomic writing, and pairing thermal with visible files by stem.

Datasets follow one layout: ``NAME/ir/<stem>.<ext>`` and ``NAME/vis/<stem>.<ext>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sage_core.atomic import atomic_path
from sage_core.errors import ImageReadError, PairingError

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImagePair:
    """One thermal file and its visible partner."""

    stem: str
    ir: Path
    vis: Path


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as stored (8 or 16 bit, 1/3/4 channels, BGR order); clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    # imdecode on the bytes, unlike imread, also copes with non-ASCII paths.
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageReadError(f"{path}: cannot decode as an image (expected png, jpg, bmp or tif)")
    return image


def write_image_atomic(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode to memory, write a temporary file beside ``path``, then rename: never half-written."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ImageReadError(f"{path}: OpenCV could not encode a {image.dtype} image of shape {image.shape}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path


def _images_in(folder: Path, role: str) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise PairingError(f"{folder}: no {role} images (expected files ending in {', '.join(IMAGE_EXTENSIONS)})")
    by_stem: dict[str, Path] = {}
    for file in files:
        if file.stem in by_stem:
            raise PairingError(f"{folder}: two {role} files share the stem {file.stem!r}: "
                               f"{by_stem[file.stem].name} and {file.name}")
        by_stem[file.stem] = file
    return by_stem


def pair_images(ir: str | os.PathLike, vis: str | os.PathLike) -> list[ImagePair]:
    """Pair thermal and visible files: two files directly, or two folders by file stem.

    Every stem must have a partner; the error lists the ones that do not.
    """
    ir, vis = Path(ir), Path(vis)
    for path, role in ((ir, "thermal"), (vis, "visible")):
        if not path.exists():
            raise PairingError(f"{path}: {role} input not found (expected a file or a folder of images)")
    if ir.is_file() and vis.is_file():
        return [ImagePair(ir.stem, ir, vis)]
    if ir.is_file() != vis.is_file():
        raise PairingError(f"give two files or two folders, not a mix: {ir} and {vis}")
    ir_files, vis_files = _images_in(ir, "thermal"), _images_in(vis, "visible")
    only_ir = sorted(set(ir_files) - set(vis_files))
    only_vis = sorted(set(vis_files) - set(ir_files))
    if only_ir or only_vis:
        parts = []
        if only_ir:
            parts.append(f"thermal without visible partner in {vis}: {', '.join(only_ir[:8])}")
        if only_vis:
            parts.append(f"visible without thermal partner in {ir}: {', '.join(only_vis[:8])}")
        raise PairingError("; ".join(parts))
    return [ImagePair(stem, ir_files[stem], vis_files[stem]) for stem in sorted(ir_files)]


def dataset_pairs(root: str | os.PathLike) -> list[ImagePair]:
    """Pairs of a dataset folder laid out as ``root/ir`` and ``root/vis``."""
    root = Path(root)
    return pair_images(root / "ir", root / "vis")


def read_pair(pair: ImagePair) -> tuple[np.ndarray, np.ndarray]:
    """Read both files of a pair; their sizes must match."""
    ir, vis = read_image(pair.ir), read_image(pair.vis)
    if ir.shape[:2] != vis.shape[:2]:
        raise PairingError(
            f"{pair.ir} is {ir.shape[1]}x{ir.shape[0]} but {pair.vis} is {vis.shape[1]}x{vis.shape[0]} "
            "(W x H); a thermal/visible pair must have the same size"
        )
    return ir, vis
