"""The shipped default model loads and fuses sensibly: both sources visible in the result."""

import numpy as np
import pytest

from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.fuser import DEFAULT_WEIGHTS, Fuser
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.synthetic import SyntheticScene
from tests.helpers import source_weights


@pytest.fixture(scope="module")
def default_fuser() -> Fuser:
    return Fuser.from_weights(None, device="cpu", backend="torch")


def _check_sane(fuser: Fuser, ir: np.ndarray, vis: np.ndarray) -> None:
    fused = fuser.fuse(ir, vis)
    assert fused.dtype == np.uint8 and fused.shape == vis.shape[:2] + (3,)
    luma = fuser.fuse_luminance(vis_to_luma_chroma(vis).y, ir_to_gray(ir))
    assert np.isfinite(luma).all()
    # The colour step clamps to [0, 1] (as for the released student's tanh): only a few highlights may need it.
    clipped = float(((luma < 0) | (luma > 1)).mean())
    assert clipped < 0.02, f"{100 * clipped:.1f} % of the fused luminance is outside [0, 1]"
    luma = np.clip(luma, 0, 1)
    assert luma.std() > 0.02, "fused image is (nearly) constant"
    from_ir, from_vis, r2 = source_weights(luma, ir_to_gray(ir), vis_to_luma_chroma(vis).y)
    assert from_ir > 0.15, f"fused image carries too little of the thermal source ({from_ir:.2f})"
    assert from_vis > 0.15, f"fused image carries too little of the visible source ({from_vis:.2f})"
    assert r2 > 0.7, f"fused image is poorly explained by its sources (R^2 {r2:.2f})"


def test_default_weights_ship_in_the_package(default_fuser):
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    assert default_fuser.info.kind == "sage_ros" and default_fuser.info.arch == "affine_fuse"
    assert "msrs180" in default_fuser.info.meta["trained_on"]


def test_default_model_on_the_synthetic_scene(default_fuser):
    frame = SyntheticScene(320, 256, seed=2).frame(1.0)
    _check_sane(default_fuser, frame.thermal_mono8, frame.visible)
    # Warm targets the visible camera misses must stay bright in the fused image.
    fused_y = default_fuser.fuse_luminance(vis_to_luma_chroma(frame.visible).y, frame.thermal)
    hot = frame.thermal > 0.8
    assert hot.any() and fused_y[hot].mean() > fused_y[~hot].mean() + 0.25


def test_default_model_on_real_pairs(tno, default_fuser):
    for pair in dataset_pairs(tno)[:8]:
        _check_sane(default_fuser, *read_pair(pair))
