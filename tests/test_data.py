from pathlib import Path

import cv2
import numpy as np
import pytest

from sage_core.errors import ImageReadError, PairingError
from sage_core.image_files import pair_images, read_image, read_pair, write_image_atomic


def _write(path: Path, shape=(8, 10, 3), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros(shape, dtype))
    return path


def test_pairs_by_stem_across_extensions(tmp_path):
    for stem in ("a", "b"):
        _write(tmp_path / "ir" / f"{stem}.png", (8, 10))
    _write(tmp_path / "vis" / "a.jpg")
    _write(tmp_path / "vis" / "b.bmp")
    (tmp_path / "vis" / "notes.txt").write_text("not an image")
    pairs = pair_images(tmp_path / "ir", tmp_path / "vis")
    assert [(p.stem, p.ir.name, p.vis.name) for p in pairs] == [("a", "a.png", "a.jpg"), ("b", "b.png", "b.bmp")]


def test_two_files_pair_directly(tmp_path):
    ir, vis = _write(tmp_path / "x.png"), _write(tmp_path / "y.tif")
    assert [(p.ir, p.vis) for p in pair_images(ir, vis)] == [(ir, vis)]


def test_stems_without_partner_are_named(tmp_path):
    _write(tmp_path / "ir" / "a.png")
    _write(tmp_path / "ir" / "lonely.png")
    _write(tmp_path / "vis" / "a.png")
    _write(tmp_path / "vis" / "orphan.png")
    with pytest.raises(PairingError, match="lonely") as info:
        pair_images(tmp_path / "ir", tmp_path / "vis")
    assert "orphan" in str(info.value)


def test_empty_folder_missing_path_mix_and_duplicate_stems(tmp_path):
    (tmp_path / "ir").mkdir()
    _write(tmp_path / "vis" / "a.png")
    with pytest.raises(PairingError, match="no thermal images"):
        pair_images(tmp_path / "ir", tmp_path / "vis")
    with pytest.raises(PairingError, match="not found"):
        pair_images(tmp_path / "nope", tmp_path / "vis")
    with pytest.raises(PairingError, match="not a mix"):
        pair_images(tmp_path / "vis" / "a.png", tmp_path / "vis")
    _write(tmp_path / "ir" / "a.png")
    _write(tmp_path / "ir" / "a.jpg")
    with pytest.raises(PairingError, match="share the stem 'a'"):
        pair_images(tmp_path / "ir", tmp_path / "vis")


def test_unreadable_and_size_mismatch(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(ImageReadError, match="cannot decode"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "missing.png")
    ir, vis = _write(tmp_path / "ir" / "a.png", (8, 10)), _write(tmp_path / "vis" / "a.png", (9, 10, 3))
    with pytest.raises(PairingError, match="same size"):
        read_pair(pair_images(ir, vis)[0])


def test_read_keeps_16_bit_and_atomic_write_leaves_no_temporary(tmp_path):
    image = (np.arange(64 * 4, dtype=np.uint16).reshape(16, 16) * 250)
    out = write_image_atomic(tmp_path / "t.png", image)
    back = read_image(out)
    assert back.dtype == np.uint16 and np.array_equal(back, image)
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]
