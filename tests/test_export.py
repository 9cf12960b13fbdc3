"""The export command's validation pair: named by the caller (--check-pair), else a generated scene."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from sage_core.options import DEFAULT_WEIGHTS
from sage_core.synthetic import SyntheticScene
from tests.helpers import training_main


def _dataset(root: Path, size: tuple[int, int]) -> Path:
    (root / "ir").mkdir(parents=True)
    (root / "vis").mkdir()
    frame = SyntheticScene(*size, seed=5).frame(0.4)
    cv2.imwrite(str(root / "ir" / "a01.png"), frame.thermal_mono8)
    cv2.imwrite(str(root / "vis" / "a01.png"), frame.visible)
    return root


def _export(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "out" / "model.ts"
    out.parent.mkdir(exist_ok=True)
    code = training_main("export", ["--weights", str(DEFAULT_WEIGHTS), "--format", "torchscript", "--out", str(out),
                                    *extra])
    return code, out


def test_the_default_check_is_the_generated_scene(tmp_path):
    code, out = _export(tmp_path)
    assert code == 0
    check = json.loads(out.with_name(out.name + ".json").read_text())["validation"]
    assert check["pair"] == "generated scene" and check["size"] == "640x512"


def test_check_pair_validates_on_the_first_pair_of_the_folder(tmp_path, capsys):
    code, out = _export(tmp_path, "--check-pair", str(_dataset(tmp_path / "mine", (200, 136))))
    assert code == 0
    check = json.loads(out.with_name(out.name + ".json").read_text())["validation"]
    assert check["pair"] == "mine/a01" and check["size"] == "200x136" and check["max_abs_diff_uint8"] <= 1
    assert "mine/a01 (200x136)" in capsys.readouterr().out


def test_a_check_pair_folder_without_pairs_fails_before_exporting(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out = _export(tmp_path, "--check-pair", str(tmp_path / "empty"))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "empty" in err[0]
    assert list(out.parent.iterdir()) == []
