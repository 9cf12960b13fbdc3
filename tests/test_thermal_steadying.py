"""Steadying an 8-bit thermal stream's gain steps (sage_core/thermal_steadying.py; docs/temporal.md)."""

import math

import cv2
import numpy as np
import pytest

from sage_core import Fuser, InferenceOptions
from sage_core.errors import ConfigError
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig
from sage_core.thermal_steadying import SteadyingConfig, ThermalSteadier, fit_change, fit_curve

H, W = 96, 128


def _scene(seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    """A camera-tone-mapped thermal picture: smooth structure over the whole range, float grey levels."""
    noise = np.random.default_rng(seed).random((height // 8, width // 8)).astype(np.float32)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 150 + 40


def _frame(scene: np.ndarray, gain: float = 1.0, offset: float = 0.0, seed: int | None = None) -> np.ndarray:
    picture = scene * gain + offset
    if seed is not None:
        picture = picture + np.random.default_rng(seed).normal(0, 1.0, scene.shape)
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8)


def _grey(out: np.ndarray) -> np.ndarray:
    return out.astype(np.float64) if out.dtype == np.uint8 else out.astype(np.float64) * 255.0


def test_fit_finds_a_global_change_and_leaves_an_entering_object_out():
    scene = _scene()
    before, after = _frame(scene), _frame(scene, 1.14, -3.5)
    after[10:40, 10:50] = 250  # a hot object entering: a quarter of the picture, not part of the change
    g, o, inliers = fit_change(cv2.resize(before.astype(np.float32), (W // 8, H // 8), interpolation=cv2.INTER_AREA),
                               cv2.resize(after.astype(np.float32), (W // 8, H // 8), interpolation=cv2.INTER_AREA))
    assert g == pytest.approx(1.14, abs=0.02) and o == pytest.approx(-3.5, abs=2.0)
    assert 0.6 < inliers < 0.95


def test_a_gain_step_becomes_a_ramp_back_to_the_cameras_tone():
    scene = _scene()
    steadier = ThermalSteadier(SteadyingConfig(0.9))
    frames = [_frame(scene)] * 3 + [_frame(scene, 1.14, -3.5)] * 60
    raw = [steadier(f) for f in frames]
    assert raw[1] is frames[1] and raw[3].dtype == np.float32  # steady: as it is; a step being absorbed: float
    outputs = [_grey(out) for out in raw]
    camera_jump = np.abs(frames[3].astype(np.float64) - frames[2]).mean()
    shown_jump = np.abs(outputs[3] - outputs[2]).mean()
    assert camera_jump > 10 and shown_jump < 0.15 * camera_jump  # a tenth of the step at once
    steps = [np.abs(outputs[i + 1] - outputs[i]).mean() for i in range(3, 30)]
    assert max(steps) < 0.15 * camera_jump  # no frame shows more than a small part of it
    assert raw[-1] is frames[-1]  # the camera's own tone again, bit for bit
    assert steadier.steps == 1


def test_noise_and_small_drift_pass_through_unchanged():
    scene = _scene(1)
    steadier = ThermalSteadier()
    for i in range(20):
        frame = _frame(scene, 1.0 + 0.0005 * i, seed=i)  # sensor noise and a slow drift of the camera's gain
        out = steadier(frame)
        assert out is frame
    assert steadier.steps == 0


def test_a_new_scene_is_not_taken_for_a_gain_step():
    steadier = ThermalSteadier()
    steadier(_frame(_scene(2)))
    other = _frame(_scene(3))
    assert steadier(other) is other and np.array_equal(steadier.correction, np.arange(256))


def test_off_and_bad_settings():
    frame = _frame(_scene())
    assert ThermalSteadier(SteadyingConfig(0.0))(frame) is frame
    for bad in (-0.1, 1.0, float("nan"), "0.5"):
        with pytest.raises(ConfigError, match="steadying strength"):
            SteadyingConfig(bad).validate()
    with pytest.raises(ConfigError, match="steadying strength"):
        ThermalNormalizerConfig(steadying=1.5).validate()
    with pytest.raises(ConfigError, match="8-bit H x W"):
        ThermalSteadier()(frame.astype(np.uint16))


def test_pipeline_steadies_8bit_thermal_and_reconfigures():
    fuser = Fuser.from_options(InferenceOptions(device="cpu", backend="torch"))
    scene, vis = _scene(), cv2.cvtColor(_frame(_scene(5)), cv2.COLOR_GRAY2BGR)
    plain = FramePipeline(fuser, ThermalNormalizer(ThermalNormalizerConfig(steadying=0.0)))
    steady = FramePipeline(fuser)
    first, jumped = _frame(scene), _frame(scene, 1.14, -3.5)
    assert np.array_equal(steady.fuse(first, vis), plain.fuse(first, vis))  # a steady camera: the same picture
    plain_jump = np.abs(plain.fuse(jumped, vis).astype(float) - plain.fuse(first, vis)).mean()
    steady_jump = np.abs(steady.fuse(jumped, vis).astype(float) - steady.fuse(first, vis)).mean()
    assert steady_jump < 0.5 * plain_jump
    three = cv2.cvtColor(jumped, cv2.COLOR_GRAY2BGR)  # 3-channel 8-bit files are made gray first
    assert steady.thermal_unit(three).ndim == 2
    steady.reconfigure_thermal(ThermalNormalizerConfig(steadying=0.0))
    assert steady.thermal_unit(jumped) is jumped


def test_a_panning_noisy_camera_is_not_taken_for_gain_steps():
    """Content moving under the pooling grid (a pan) with sensor noise: no gain step, the frames pass as they are."""
    height, width = 240, 320
    wide = cv2.resize(np.random.default_rng(7).random((height // 16, (width + 64) // 16)).astype(np.float32),
                      (width + 64, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 120 + 60
    steadier = ThermalSteadier()
    rng = np.random.default_rng(8)
    for i in range(30):
        picture = wide[:, 2 * i:2 * i + width] + rng.normal(0, 6.0, (height, width))
        frame = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
        assert steadier(frame) is frame
    assert steadier.steps == 0


def _camera_curve(levels: np.ndarray) -> np.ndarray:
    """A camera's gain step as it is on the plaza clip: a tone curve, raised in the middle and saturating at the
    top (+8 grey levels at 100, +19 at 140, +28 at 180 and +18 at 220 there), not a line."""
    return levels + 28.0 * np.sin(np.clip((levels - 40.0) / 180.0, 0.0, 1.0) * np.pi) ** 1.5


def test_a_tone_curve_step_is_undone_as_a_curve():
    """What the frame shows at once is a tenth of the camera's step at every grey level when the step is measured as
    a curve; a line (the steadier before the curve, ``curve_from`` infinite) leaves the bend in the picture."""
    before = _frame(_scene(4, 256, 320))  # 40 x 32 points at 1/8: enough in each 16-level bin
    after = np.clip(np.rint(_camera_curve(before.astype(np.float64))), 0, 255).astype(np.uint8)
    expected = before + 0.1 * (after.astype(np.float64) - before)  # a tenth of the step let in at once
    errors = {}
    for curve_from in (4.0, math.inf):
        steadier = ThermalSteadier(SteadyingConfig(0.9, curve_from=curve_from))
        steadier(before)
        errors[curve_from] = float(np.sqrt(np.mean(np.square(_grey(steadier(after)) - expected))))
        assert steadier.steps == 1
    # Not 0: the fit sees 8 x 8 block means, whose curve is not the pixels' (the step is 28 grey levels at most).
    assert errors[4.0] < 2.5 and errors[4.0] < 0.5 * errors[math.inf]


def test_curve_fit_follows_a_saturating_step_and_is_monotone():
    before = cv2.resize(_frame(_scene(4, 256, 320)).astype(np.float32), (40, 32), interpolation=cv2.INTER_AREA)
    after = _camera_curve(before.astype(np.float64)).astype(np.float32)
    g, o, _ = fit_change(before, after)
    curve = fit_curve(before, after, g, o)
    used = np.arange(int(before.min()) + 8, int(before.max()) - 8)
    assert np.abs(curve[used] - _camera_curve(used.astype(np.float64))).max() < 2.0
    assert np.all(np.diff(curve) >= 0)
    with pytest.raises(ConfigError, match="curve_from"):
        SteadyingConfig(0.9, curve_from=0.0).validate()
