"""Thermal normalisation and camera alignment (sage_core, no ROS)."""

import numpy as np
import pytest

from sage_core.alignment import Aligner, AlignmentConfig, transform_intrinsics
from sage_core.errors import ConfigError, FusionInputError
from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig


def test_percentile_agc_ignores_a_few_hot_pixels():
    raw = np.full((64, 64), 7000, np.uint16)
    raw[:, 32:] = 8000
    raw[0, 0] = 65000  # a hot pixel
    out = ThermalNormalizer(ThermalNormalizerConfig("percentile", 1, 99, smoothing=0))(raw)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert out[5, 5] == 0.0 and out[5, 40] == 1.0


def test_minmax_and_fixed():
    raw = np.array([[10.0, 20.0], [30.0, 40.0]], np.float32)
    np.testing.assert_allclose(ThermalNormalizer(ThermalNormalizerConfig("minmax", smoothing=0))(raw),
                               [[0, 1 / 3], [2 / 3, 1]], rtol=1e-6)
    fixed = ThermalNormalizer(ThermalNormalizerConfig("fixed", fixed_min=0.0, fixed_max=100.0))(raw)
    np.testing.assert_allclose(fixed, [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)


def test_range_smoothing_avoids_flicker():
    normalizer = ThermalNormalizer(ThermalNormalizerConfig("minmax", smoothing=0.8))
    frame = np.linspace(1000, 2000, 100, dtype=np.float32).reshape(10, 10)
    normalizer(frame)
    hot = frame.copy()
    hot[5, 5] = 3000  # a hot object enters for one frame
    normalizer(hot)
    lo, hi = normalizer.current_range
    assert lo == pytest.approx(1000) and hi == pytest.approx(0.8 * 2000 + 0.2 * 3000)


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (7200 + 1800 * rng.random((64, 80))).astype(np.uint16)


@pytest.mark.parametrize("bad", [np.zeros((64, 80), np.uint16), np.full((64, 80), 65535, np.uint16),
                                 np.full((64, 80), 3e38, np.float32), np.full((64, 80), 8000, np.uint16)],
                         ids=["all_zero", "saturated", "absurd_float", "constant"])
def test_one_bad_frame_does_not_move_the_smoothed_range(bad):
    normalizer = ThermalNormalizer()
    for _ in range(10):
        good = normalizer(_scene())
    before = normalizer.current_range
    normalizer(bad)
    assert normalizer.current_range == before and normalizer.outliers == 1
    assert np.abs(normalizer(_scene()) - good).max() < 1e-3  # the next frame has its normal contrast at once


def test_constant_frame_after_an_all_zero_one_is_not_white():
    normalizer = ThermalNormalizer()
    for _ in range(10):
        normalizer(_scene())
    normalizer(np.zeros((64, 80), np.uint16))
    constant = normalizer(np.full((64, 80), 8000, np.uint16))
    assert 0.2 < float(constant.mean()) < 0.8  # mapped by the scene's range, not stretched to white


def test_a_lasting_change_of_scene_is_adopted_after_outlier_frames():
    normalizer = ThermalNormalizer(ThermalNormalizerConfig(outlier_frames=5))
    for _ in range(10):
        normalizer(_scene())
    hot = (30000 + 9000 * np.random.default_rng(1).random((64, 80))).astype(np.uint16)  # lens cap off
    ranges = []
    for _ in range(6):
        normalizer(hot)
        ranges.append(normalizer.current_range)
    assert ranges[3][0] < 10000 and ranges[4][0] > 29000  # kept for 4 frames, adopted at the 5th
    assert float(normalizer(hot).std()) > 0.2


@pytest.mark.parametrize("config, message", [
    (ThermalNormalizerConfig("agc"), "method"),
    (ThermalNormalizerConfig(low_percentile=50, high_percentile=10), "percentiles"),
    (ThermalNormalizerConfig(fixed_min=5, fixed_max=5), "fixed range"),
    (ThermalNormalizerConfig(smoothing=1.0), "smoothing"),
])
def test_normalizer_validation(config, message):
    with pytest.raises(ConfigError, match=message):
        ThermalNormalizer(config)


def test_resize_only_alignment_matches_reference_size():
    thermal = np.zeros((32, 40), np.uint8)
    rgb = np.zeros((64, 80, 3), np.uint8)
    t, r = Aligner()(thermal, rgb)
    assert t.shape == (64, 80) and r.shape == (64, 80, 3)
    t, r = Aligner(AlignmentConfig(reference="thermal"))(thermal, rgb)
    assert t.shape == (32, 40) and r.shape == (32, 40, 3)


def test_homography_warps_and_crops_to_common_area():
    rgb = np.zeros((100, 120, 3), np.uint8)
    thermal = np.zeros((100, 120), np.uint8)
    thermal[40:60, 50:70] = 255  # a hot square
    shift = [1, 0, 10, 0, 1, 5, 0, 0, 1]  # thermal pixel (x, y) is rgb pixel (x + 10, y + 5)
    aligner = Aligner(AlignmentConfig(homography=shift))
    t, r = aligner(thermal, rgb)
    plan = aligner.plan((120, 100), (120, 100))
    assert plan.crop == (10, 5, 120, 100)
    assert t.shape == r.shape[:2] == (95, 110)
    ys, xs = np.nonzero(t > 128)
    # In rgb pixels the square is at x 60..79, y 45..64; after the crop, x 50..69, y 40..59.
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (50, 69, 40, 59)


def test_output_size_and_intrinsics():
    aligner = Aligner(AlignmentConfig(output_width=60, output_height=50))
    plan = aligner.plan((120, 100), (120, 100))
    k, p = transform_intrinsics([100, 0, 59.5, 0, 100, 49.5, 0, 0, 1], [100, 0, 59.5, 0, 0, 100, 49.5, 0, 0, 0, 1, 0],
                                plan)
    assert k[0] == pytest.approx(50) and k[2] == pytest.approx(29.5) and k[5] == pytest.approx(24.5)
    assert p[2] == pytest.approx(29.5) and p[6] == pytest.approx(24.5)


@pytest.mark.parametrize("config, message", [
    (AlignmentConfig(reference="left"), "reference camera"),
    (AlignmentConfig(output_width=10), "both width and height"),
    (AlignmentConfig(homography=[1, 0, 0]), "9 finite numbers"),
    (AlignmentConfig(homography=[0] * 9), "singular"),
])
def test_alignment_validation(config, message):
    with pytest.raises(ConfigError, match=message):
        Aligner(config)


def test_homography_without_overlap_is_an_error():
    far = [1, 0, 5000, 0, 1, 0, 0, 0, 1]
    with pytest.raises(FusionInputError, match="no common area"):
        Aligner(AlignmentConfig(homography=far)).plan((100, 100), (100, 100))


@pytest.mark.parametrize("dtype, top", [(np.uint16, 65535), (np.uint16, 40), (np.uint8, 255)])
def test_percentiles_from_the_histogram_equal_numpys(dtype, top):
    from sage_core.thermal import _integer_percentiles

    rng = np.random.default_rng(11)
    for low_q, high_q in ((1.0, 99.0), (0.0, 100.0), (37.3, 62.9)):
        sample = rng.integers(0, top + 1, (61, 47)).astype(dtype)
        expected = np.percentile(sample, (low_q, high_q))
        assert np.allclose(_integer_percentiles(sample, low_q, high_q), expected, rtol=0, atol=1e-9)
