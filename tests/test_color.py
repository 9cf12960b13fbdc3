import cv2
import numpy as np
import pytest

from sage_core.color import ir_to_gray, recompose_bgr, vis_to_luma_chroma
from sage_core.errors import ConfigError, FusionInputError
from sage_core.fuser import Fuser
from tests.helpers import TakeThermal, TakeVisible, random_bgr


def test_take_visible_gives_back_the_visible_image():
    vis = random_bgr()
    fused = Fuser(TakeVisible(), device="cpu").fuse(np.zeros(vis.shape[:2], np.uint8), vis)
    # YCrCb round trip through 8-bit chroma: within a few grey levels, exact on gray pixels.
    assert np.abs(fused.astype(int) - vis.astype(int)).max() <= 3
    gray = np.repeat(vis[..., :1], 3, axis=2)
    fused_gray = Fuser(TakeVisible(), device="cpu").fuse(np.zeros(vis.shape[:2], np.uint8), gray)
    assert np.abs(fused_gray.astype(int) - gray.astype(int)).max() <= 1


def test_fused_luminance_is_the_model_output_and_chroma_the_visible():
    ir = np.full((20, 30), 120, np.uint8)
    vis = np.zeros((20, 30, 3), np.uint8)
    vis[:] = (60, 60, 100)  # BGR: reddish, far enough from saturation that nothing clamps
    fused = Fuser(TakeThermal(), device="cpu").fuse(ir, vis)
    y = cv2.cvtColor(fused, cv2.COLOR_BGR2YCrCb)
    ref = cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb)
    assert abs(int(y[0, 0, 0]) - 120) <= 2
    assert abs(int(y[0, 0, 1]) - int(ref[0, 0, 1])) <= 2  # Cr kept: still red
    assert fused[0, 0, 2] > fused[0, 0, 1] and fused[0, 0, 2] > fused[0, 0, 0]


def test_recompose_clamps_and_rounds_as_released():
    f = np.array([[-0.2, 0.0, 0.5, 1.0, 1.3]], np.float32)
    neutral = np.full_like(f, 0.5)
    out = recompose_bgr(f, neutral, neutral)
    assert out[0, :, 0].tolist() == [0, 0, 128, 255, 255]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_ir_channel_layouts_agree(channels):
    gray = np.random.default_rng(1).integers(0, 256, (10, 12), dtype=np.uint8)
    if channels is None:
        image = gray
    elif channels == 1:
        image = gray[..., None]
    elif channels == 3:
        image = np.repeat(gray[..., None], 3, axis=2)
    else:
        image = np.concatenate([np.repeat(gray[..., None], 3, axis=2), np.full_like(gray[..., None], 255)], axis=2)
    np.testing.assert_allclose(ir_to_gray(image), gray / 255.0, atol=1e-6)


def test_16bit_inputs_scale_by_65535():
    ir16 = np.full((4, 5), 65535, np.uint16)
    assert np.allclose(ir_to_gray(ir16), 1.0)
    vis8 = random_bgr(8, 8, seed=3)
    vis16 = vis8.astype(np.uint16) * 257
    y8, y16 = vis_to_luma_chroma(vis8).y, vis_to_luma_chroma(vis16).y
    assert np.abs(y8 - y16).max() < 2.5 / 255


def test_gray_visible_has_neutral_chroma():
    luma = vis_to_luma_chroma(np.full((5, 5), 100, np.uint8))
    assert np.allclose(luma.cr, 0.5) and np.allclose(luma.cb, 0.5) and np.allclose(luma.y, 100 / 255)


@pytest.mark.parametrize(
    "ir, vis, message",
    [
        (np.zeros((10, 10), np.uint8), np.zeros((10, 12, 3), np.uint8), "same size"),
        (np.zeros((10, 10, 2), np.uint8), np.zeros((10, 10, 3), np.uint8), "ir: expected"),
        (np.zeros((10, 10), np.int32), np.zeros((10, 10, 3), np.uint8), "unsupported pixel type"),
        (np.full((10, 10), 40.0, np.float32), np.zeros((10, 10, 3), np.uint8), "must lie in [0, 1]"),
        (np.full((10, 10), np.nan, np.float32), np.zeros((10, 10, 3), np.uint8), "NaN"),
        (np.zeros((0, 0), np.uint8), np.zeros((0, 0, 3), np.uint8), "empty"),
    ],
)
def test_bad_images_are_refused_with_the_reason(ir, vis, message):
    with pytest.raises(FusionInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Fuser(TakeVisible(), device="cpu").fuse(ir, vis)


def test_cuda_request_without_gpu_is_an_error_not_a_silent_cpu_run():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Fuser(TakeVisible(), device="cuda")


def test_uint8_chroma_is_the_float_chroma_times_255():
    vis = random_bgr(40, 50, seed=5)
    as_float, as_uint8 = vis_to_luma_chroma(vis), vis_to_luma_chroma(vis, chroma_uint8=True)
    assert as_uint8.cr.dtype == np.uint8 and as_uint8.cb.dtype == np.uint8
    assert np.array_equal(as_uint8.y, as_float.y)
    assert np.array_equal(as_uint8.cr / np.float32(255), as_float.cr)
    assert np.array_equal(as_uint8.cb / np.float32(255), as_float.cb)


def test_recompose_from_uint8_chroma_matches_the_float_path_within_one_grey_level():
    rng = np.random.default_rng(6)
    fused = rng.uniform(-0.3, 1.3, (300, 400)).astype(np.float32)  # out of range too: clamping must agree
    luma = vis_to_luma_chroma(random_bgr(300, 400, seed=7), chroma_uint8=True)
    reference = recompose_bgr(fused, luma.cr / np.float32(255), luma.cb / np.float32(255))
    into = np.zeros((300, 400, 3), np.uint8)
    fast = recompose_bgr(fused, luma.cr, luma.cb, out=into)
    assert fast is into
    difference = np.abs(fast.astype(int) - reference.astype(int))
    assert difference.max() <= 1 and np.count_nonzero(difference) <= 10  # rounding ties only (~4 per million)
