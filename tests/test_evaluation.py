"""Baselines and the evaluation tool (training/evaluate.py) on a small generated dataset."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sage_core.errors import ConfigError
from sage_core.eval.baselines import AverageFusion, GuidedFilterFusion, MaxFusion, make_baseline
from sage_core.eval.metrics import METRICS
from sage_core.synthetic import SyntheticScene
from tests.helpers import training_main

REPO = Path(__file__).resolve().parents[1]


def test_average_and_max_rules():
    y, ir = np.float32([[0.2, 0.8]]), np.float32([[0.6, 0.4]])
    np.testing.assert_allclose(AverageFusion().fuse_luminance(y, ir), [[0.4, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(MaxFusion().fuse_luminance(y, ir), [[0.6, 0.8]], rtol=1e-6)
    with pytest.raises(ConfigError, match="unknown baseline 'median'"):
        make_baseline("median")


def test_gff_keeps_an_identical_pair_and_takes_detail_from_the_textured_source():
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 8)
    assert np.abs(GuidedFilterFusion().fuse_luminance(smooth, smooth) - smooth).max() < 1e-3
    texture = (0.5 + 0.3 * np.sign(np.sin(np.arange(96) / 1.5)))[None, :].repeat(96, 0).astype(np.float32)
    flat = np.full((96, 96), 0.5, np.float32)
    fused = GuidedFilterFusion().fuse_luminance(flat, texture)
    assert np.corrcoef(fused.ravel(), texture.ravel())[0, 1] > 0.9


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "tiny"
    (root / "ir").mkdir(parents=True)
    (root / "vis").mkdir()
    scene = SyntheticScene(200, 176, seed=3)
    for index in range(3):
        frame = scene.frame(float(index))
        cv2.imwrite(str(root / "ir" / f"s{index}.png"), frame.thermal_mono8)
        cv2.imwrite(str(root / "vis" / f"s{index}.png"), frame.visible)
    folder = root.parent / "fused_avg"
    folder.mkdir()
    for index in range(3):
        ir = cv2.imread(str(root / "ir" / f"s{index}.png"), cv2.IMREAD_UNCHANGED)
        vis = cv2.imread(str(root / "vis" / f"s{index}.png"))
        cv2.imwrite(str(folder / f"s{index}.png"), AverageFusion().fuse(ir, vis))
    return root


def run_evaluate(args: list[str]) -> int:
    return training_main("evaluate", args)


def test_evaluate_writes_tables_csv_charts_and_mosaics(dataset, tmp_path, capsys):
    out = tmp_path / "eval"
    folder = dataset.parent / "fused_avg"
    weights = REPO / "sage_core" / "weights" / "affine_fuse_default.pt"
    code = run_evaluate(["--data", str(dataset), "--method", f"ours=weights:{weights}",
                         "--method", "avg=baseline:average", "--method", "files=" + str(folder),
                         "--method", "gff=baseline:gff", "--out", str(out), "--mosaics", "2", "--device", "cpu"])
    assert code == 0
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 3 * 4 and set(METRICS) <= set(rows[0])
    timed = {r["method"]: bool(r["ms"]) for r in rows}
    assert timed == {"ours": True, "avg": True, "files": False, "gff": True}
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["tiny"] and list(summary["tiny"]) == ["ours", "avg", "files", "gff"]
    assert list(summary["tiny"]["ours"]) == list(METRICS)
    # Files written by the average rule score as the average rule computed here.
    for key in METRICS:
        assert summary["tiny"]["files"][key] == pytest.approx(summary["tiny"]["avg"][key], rel=1e-6)
    table = (out / "summary.md").read_text()
    assert "### tiny (3 images)" in table and "Nabf ↓" in table and "**" in table
    assert sorted(p.name for p in out.glob("metrics_*.png")) == [
        "metrics_contrast_detail.png", "metrics_error.png", "metrics_information.png", "metrics_structure.png"]
    assert len(list((out / "mosaics").glob("*.png"))) == 2
    assert "| ours |" in capsys.readouterr().out


@pytest.mark.parametrize("method, message", [
    ("nonsense", "expected NAME=SPEC"),
    ("x=baseline:median", "unknown baseline"),
    ("x=/no/such/folder", "not a folder of fused images"),
    ("x=weights:/no/such.pt", "checkpoint not found"),
])
def test_bad_method_specs(dataset, tmp_path, capsys, method, message):
    assert run_evaluate(["--data", str(dataset), "--method", method, "--out", str(tmp_path / "o")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0]


def test_missing_fused_file_is_named(dataset, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "s0.png").write_bytes((dataset.parent / "fused_avg" / "s0.png").read_bytes())
    assert run_evaluate(["--data", str(dataset), "--method", f"p={partial}", "--out", str(tmp_path / "o")]) == 2
    assert "no fused image for 's1'" in capsys.readouterr().err
