"""Fusion metrics: hand-computable cases, the reference values to 0.5 %, and bad input."""

import json
import math

import numpy as np
import pytest

from sage_core.errors import FusionInputError
from sage_core.eval import metrics as M
from sage_core.image_files import dataset_pairs, read_image, read_pair

RNG = np.random.default_rng(0)


def test_constant_image_has_no_information():
    f = np.full((32, 32), 100.0)
    assert M.entropy(f) == 0.0 and M.standard_deviation(f) == 0.0
    assert M.spatial_frequency(f) == 0.0 and M.average_gradient(f) == 0.0


def test_entropy_of_two_equal_levels_is_one_bit():
    f = np.zeros((16, 16))
    f[:, 8:] = 255
    assert M.entropy(f) == pytest.approx(1.0)
    assert M.standard_deviation(f) == pytest.approx(127.5)


def test_single_vertical_edge_spatial_frequency_and_gradient():
    f = np.zeros((10, 10))
    f[:, 5:] = 90.0
    # Row differences are all 0; column differences: one jump of 90 per row among 9 differences.
    assert M.spatial_frequency(f) == pytest.approx(math.sqrt(90.0 ** 2 / 9))
    # np.gradient: columns 4 and 5 see (90 - 0) / 2 = 45; AG = mean(45 / sqrt(2)) over 2 of 10 columns.
    assert M.average_gradient(f) == pytest.approx(0.2 * 45 / math.sqrt(2))


def test_identical_sources_and_fusion():
    a = RNG.integers(0, 256, (176, 176)).astype(np.float64)
    assert M.mutual_information(a, a, a) == pytest.approx(2 * M.entropy(a))
    assert M.correlation_coefficient(a, a, a) == pytest.approx(1.0)
    assert M.psnr(a + 0.0, a, a) == math.inf
    family = M.ssim_family(a, a, a)
    assert family["SSIM"] == pytest.approx(2.0) and family["MS_SSIM"] == pytest.approx(2.0)
    assert M.vif(a, a, a) == pytest.approx(2.0, rel=1e-6)
    # Where gA == gF the reference takes G = gF (a quirk, not 1): strong edges saturate the first sigmoid.
    assert M.qabf(a, a, a) == pytest.approx(0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2)), rel=1e-3)
    assert M.nabf(a, a, a) == 0.0  # no pixel where F is stronger than both sources


def test_psnr_convention():
    a = np.zeros((20, 20))
    f = np.full((20, 20), 255.0)
    # MSE on [0, 1] images = 1 for both sources: PSNR = 20 log10(255 / 1).
    assert M.psnr(f, a, a) == pytest.approx(20 * math.log10(255.0))


def test_pil_luma_conversion():
    bgr = np.array([[[10, 200, 30], [255, 255, 255], [0, 0, 0]]], np.uint8)
    expected = [(30 * 19595 + 200 * 38470 + 10 * 7471 + 0x8000) >> 16, 255, 0]
    assert M.to_gray_l(bgr).tolist() == [expected]


@pytest.mark.parametrize("fused, ir, vis, message", [
    (np.zeros((32, 32), np.uint16), np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), "8-bit"),
    (np.zeros((32, 32), np.uint8), np.zeros((32, 30), np.uint8), np.zeros((32, 32), np.uint8), "same size"),
    (np.zeros((32, 32, 2), np.uint8), np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), "fused: expected"),
    (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "too small"),
    (np.zeros((100, 300), np.uint8), np.zeros((100, 300), np.uint8), np.zeros((100, 300), np.uint8), "MS-SSIM needs"),
])
def test_bad_input_names_the_image(fused, ir, vis, message):
    with pytest.raises(FusionInputError, match=message):
        M.all_metrics(fused, ir, vis)


def test_reference_values_within_half_a_percent(m3fd):
    reference = json.loads((m3fd / "reference" / "metrics_reference.json").read_text())["methods"]
    worst = {}
    for method in ("sage_official", "average"):
        for pair in dataset_pairs(m3fd):
            ir, vis = read_pair(pair)
            fused = read_image(m3fd / "reference" / method / f"{pair.stem}.png")
            ours = M.all_metrics(fused, ir, vis)
            for key, value in reference[method]["per_image"][pair.stem].items():
                relative = abs(ours[key] - value) / abs(value)
                worst[(method, key)] = max(worst.get((method, key), 0.0), relative)
                assert relative <= 0.005, f"{method} {pair.stem} {key}: ours {ours[key]!r}, reference {value!r}"
    assert {key for _, key in worst} == set(M.METRICS)
