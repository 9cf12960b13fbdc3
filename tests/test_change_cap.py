"""The change cap: the fused picture never changes between frames more than its cameras do (sage_core/change_cap.py;
docs/temporal.md)."""

import cv2
import numpy as np
import pytest

from sage_core import Fuser, InferenceOptions
from sage_core.change_cap import TOLERANCE, ChangeCap
from sage_core.errors import ConfigError
from sage_core.fusion_smoothing import SmoothingConfig
from sage_core.pipeline import FramePipeline
from tests.helpers import change_rms

H, W = 96, 128
STILL = np.zeros((H // 4, W // 4, 2), np.float32)  # no motion, on a 1/4 grid


def _texture(seed: int, h: int = H, w: int = W, cell: int = 4) -> np.ndarray:
    noise = np.random.default_rng(seed).random((h // cell, w // cell)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def test_a_fusion_flickering_over_still_cameras_changes_no_more_than_they_do():
    y, ir = _texture(0) * 0.8 + 0.1, _texture(1) * 0.5 + 0.2
    rng = np.random.default_rng(2)
    cap = ChangeCap(0.02)
    changes = {"fused": [], "capped": []}
    previous = None
    for index in range(1, 9):
        noisy_y = y + rng.normal(0, 0.5 / 255, y.shape).astype(np.float32)  # half a grey level of sensor noise
        fused = (0.9 * noisy_y + 0.4 * ir - 0.1 + rng.uniform(-0.01, 0.01, y.shape)).astype(np.float32)
        out = cap(fused, noisy_y, ir, index, STILL if index > 1 else None)
        held = np.abs(out - fused)
        assert held.max() <= 0.02 + 1e-6  # never held more than the bound from the model's frame
        if previous is not None:
            change = np.abs(out - previous[0])
            allowed = np.maximum(np.abs(noisy_y - previous[1]), np.abs(ir - previous[2])) + TOLERANCE
            free = held < 0.02 - 1e-6  # where the bound does not decide, the cameras' change does
            assert np.all(change[free] <= allowed[free] + 1e-6)
            changes["fused"].append(fused - previous[3])
            changes["capped"].append(change)
        previous = (out, noisy_y, ir, fused)
    rms = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in changes.items()}
    assert rms["capped"] < 0.7 * rms["fused"]
    assert cap.capped == 7


def test_content_moving_with_the_flow_passes_as_it_is():
    """Both cameras and the fusion pan 4 pixels a frame; along that motion nothing changes, so nothing is capped."""
    wide_y, wide_ir = _texture(3, H, W + 40), _texture(4, H, W + 40, 8)
    flow = np.zeros((H // 4, W // 4, 2), np.float32)
    flow[..., 0] = -1.0  # this frame's pixel was one pooled pixel (4 px) to the left... of the previous frame's
    cap = ChangeCap(0.02)
    for index in range(1, 6):
        x = 40 - 4 * index  # the window moves left over the scene: content moves right in the frame
        y, ir = wide_y[:, x:x + W].copy(), wide_ir[:, x:x + W].copy()
        fused = np.clip(1.3 * y + 0.5 * ir - 0.3, 0, 1).astype(np.float32)
        out = cap(fused, y, ir, index, flow if index > 1 else None)
        # Content entering at the left edge is capped there (it has no past), and what the cap held moves in with
        # the motion, one grey level a frame less: left out.
        inside = (slice(4, -4), slice(40, -4))
        assert np.abs(out - fused)[inside].max() < 1e-6


def test_out_of_order_frames_and_new_scenes_pass_and_restart():
    y, ir = _texture(5), _texture(6)
    cap = ChangeCap(0.02)
    first = (0.5 * y + 0.5 * ir).astype(np.float32)
    assert cap(first, y, ir, 1, None) is first
    jumped = np.clip(first + 0.2, 0, 1)
    assert np.abs(cap(jumped, y, ir, 2, STILL) - jumped).max() == pytest.approx(0.02, abs=1e-6)  # held, bounded
    assert cap(jumped, y, ir, 4, STILL) is jumped  # frame 3 was not capped yet: passes, state restarts at 4
    assert cap(first, y, ir, 3, STILL) is first  # the late frame 3 passes and does not replace frame 4's state
    assert np.abs(cap(first, y, ir, 5, STILL) - first).max() == pytest.approx(0.02, abs=1e-6)  # against frame 4
    assert cap(first, y, ir, 6, None) is first  # a new scene
    off = ChangeCap(0.0)
    assert not off.enabled and off(jumped, y, ir, 7, STILL) is jumped
    with pytest.raises(ConfigError, match="change cap"):
        SmoothingConfig(change_cap=1.5).validate()


@pytest.fixture(scope="module")
def fuser() -> Fuser:
    return Fuser.from_options(InferenceOptions(device="cpu", backend="torch"))


def test_in_the_pipeline_a_patch_both_cameras_see_flicker_changes_no_more_than_they_do(fuser):
    """Fine detail both cameras see changing every frame (leaves in the wind) over a still scene: the model adds both
    cameras' changes (a + b above 1); capped, the fused patch changes no more than the larger camera's change plus
    one grey level. A reset forgets the cap's state."""
    vis_scene, ir_scene = _texture(4) * 150 + 40, _texture(5, cell=8) * 80 + 50
    plain = FramePipeline(fuser)
    capped = FramePipeline(fuser, smoothing=SmoothingConfig(change_cap=0.02))
    assert capped.smoothing_active
    inside = (slice(40, 64), slice(52, 84))  # the patch, away from its edges
    pairs = []
    for i in range(6):
        vis, ir = vis_scene.copy(), ir_scene.copy()
        leaves = _texture(20 + i, 40, 48, 2)
        vis[32:72, 44:92], ir[32:72, 44:92] = 90 + 16 * leaves, 140 + 12 * leaves  # within the bound's reach
        pairs.append((ir.astype(np.uint8), cv2.cvtColor(vis.astype(np.uint8), cv2.COLOR_GRAY2BGR)))
    rms = change_rms({"plain": plain, "capped": capped}, pairs, inside)
    assert rms["plain"] > 1.05 * rms["cameras"]  # the model's rule adds both cameras' changes
    assert rms["capped"] <= rms["cameras"] + 1.0 and rms["capped"] < 0.9 * rms["plain"]
    assert capped.smoother.cap.capped == 5
    capped.reset_smoothing()
    ir, vis = pairs[-1]
    assert np.array_equal(capped.fuse(ir, vis), plain.fuse(ir, vis))  # after a reset: the model's own frame
