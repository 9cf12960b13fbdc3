"""The colour/luminance recomposition of benchmarks/diag_downstream.py (no detector needed)."""

from __future__ import annotations

import importlib.util
import sys

import cv2
import numpy as np
from conftest import REPO


def _diag():
    for name in ("bench_downstream", "diag_downstream"):
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    return sys.modules["diag_downstream"]


def _images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vis = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    return ir, vis


def test_compose_keeps_the_visible_image_and_halving_chroma_is_the_plain_average():
    diag = _diag()
    ir, vis = _images()
    same = diag.compose(diag.luma(vis), vis, 1.0)
    assert np.abs(same.astype(int) - vis).max() <= 3  # YCrCb round trip of uint8
    gray = diag.compose(diag.luma(vis), vis, 0.0)
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 1
    average = cv2.addWeighted(vis, 0.5, diag.gray3(ir), 0.5, 0)
    y_avg = (diag.luma(vis) + diag.luma(diag.gray3(ir))) / 2
    assert np.abs(diag.compose(y_avg, vis, 0.5).astype(int) - average).max() <= 3


def test_match_takes_the_reference_mean_and_spread():
    diag = _diag()
    rng = np.random.default_rng(1)
    y, ref = rng.normal(80, 30, (20, 20)).astype(np.float32), rng.normal(20, 5, (20, 20)).astype(np.float32)
    out = diag.match(y, ref)
    assert abs(out.mean() - ref.mean()) < 1e-3 and abs(out.std() - ref.std()) < 1e-3
    assert np.corrcoef(out.ravel(), y.ravel())[0, 1] > 0.999


def test_splits_are_disjoint_halves():
    diag = _diag()
    names = [f"{i:05d}{'D' if i % 3 else 'N'}" for i in range(11)]
    even, odd = diag.split(names, "even"), diag.split(names, "odd")
    assert sorted(even + odd) == names and not set(even) & set(odd)
