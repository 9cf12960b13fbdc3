"""The stability term (loss.stability, issue 23): the fused picture must not change with sensor noise or a
shift of a few pixels (sage_core, no ROS)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sage_core.errors import ConfigError
from sage_core.models import build_model
from sage_core.train.config import load_config
from sage_core.train.stability import StabilityConfig, StabilityTerm

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "training" / "configs" / "smoke.yaml"


def _texture(size: int = 96, seed: int = 0) -> torch.Tensor:
    noise = np.random.default_rng(seed).random((size // 8, size // 8)).astype(np.float32)
    return torch.from_numpy(cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1))[None, None]


def _pixelwise(y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    return 0.5 * y + 0.5 * ir


def _jittery(y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Decides at low resolution with a steep threshold: small input changes flip its decisions."""
    pooled = torch.nn.functional.avg_pool2d(ir, 16)
    share = torch.sigmoid((pooled - 0.5) * 200.0)
    share = torch.nn.functional.interpolate(share, size=y.shape[-2:], mode="bilinear", align_corners=False)
    return share * ir + (1 - share) * y


def _loss(model, **settings) -> float:
    y, ir = _texture(seed=1), _texture(seed=2)
    term = StabilityTerm(StabilityConfig(weight=1.0, margin=8, **settings), seed=3)
    return float(np.mean([float(term.loss(model, y, ir, model(y, ir))) for _ in range(8)]))


def test_a_model_that_decides_pixel_by_pixel_is_stable_and_one_with_jumpy_decisions_is_not():
    assert _loss(_pixelwise, noise=0.0) < 1e-6  # a shift alone: the same pixels, the same picture
    assert _loss(_pixelwise) < 1e-5  # its noise passes through pixel by pixel and averages out in the pool
    assert _loss(_jittery) > 10 * _loss(_pixelwise)
    assert _loss(_jittery, noise=0.0, max_shift=0) == 0.0  # nothing changed, nothing to penalise


def test_the_pool_removes_the_pixel_noise_but_not_changed_decisions():
    assert _loss(_pixelwise, pool=1) > 20 * _loss(_pixelwise, pool=8)  # variance / 64 for independent noise
    assert _loss(_jittery, pool=8) > 0.3 * _loss(_jittery, pool=1)


def test_training_on_the_term_makes_an_affine_fuse_steadier():
    torch.manual_seed(0)
    model = build_model("affine_fuse", {"width": 8, "scale": 4, "dilations": [1, 2], "refine": 0})
    with torch.no_grad():  # start from jumpy decisions: large random coefficient weights
        model.coefficients.weight.normal_(0.0, 0.5)
    y, ir = _texture(seed=4), _texture(seed=5)
    term = StabilityTerm(StabilityConfig(weight=1.0, margin=8, noise=0.02), seed=6)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)

    def measured() -> float:
        probe = StabilityTerm(StabilityConfig(weight=1.0, margin=8, noise=0.02), seed=99)
        with torch.no_grad():
            return float(np.mean([float(probe.loss(model, y, ir, model(y, ir))) for _ in range(8)]))

    before = measured()
    for _ in range(60):
        loss = term.loss(model, y, ir, model(y, ir))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert measured() < 0.5 * before


def _write_dataset(root: Path) -> Path:
    (root / "ir").mkdir(parents=True)
    (root / "vis").mkdir()
    for index in range(2):
        texture = (_texture(96, seed=10 + index)[0, 0].numpy() * 255).astype(np.uint8)
        cv2.imwrite(str(root / "ir" / f"{index:03d}.png"), texture)
        cv2.imwrite(str(root / "vis" / f"{index:03d}.png"), cv2.cvtColor(255 - texture, cv2.COLOR_GRAY2BGR))
    return root


def _overrides(data: Path, tmp: Path, stability: str, crop: str = "[96, 96]") -> list[str]:
    values = {"data.train": f"[{data}]", "data.val": "null", "data.holdout": 0, "data.crop": crop,
              "teacher.kind": "none", "student.arch": "affine_fuse", "student.config": "{width: 8, refine: 0}",
              "sam.cache_dir": str(tmp / "cache"), "loss.stability": stability,
              "run.steps": 3, "run.checkpoint_every": 100}
    return [f"{k}={v}" for k, v in values.items()]


def test_distillation_logs_and_trains_on_the_term(tmp_path):
    from sage_core.train.distiller import Distiller

    data = _write_dataset(tmp_path / "train")
    config = load_config(SMOKE, _overrides(data, tmp_path, "{weight: 50.0, margin: 16}"))
    distiller = Distiller(config, tmp_path / "run", progress=False)
    values = distiller.student_step()
    assert values["student/stability"] > 0 and np.isfinite(values["student/loss"])
    assert distiller.run()["steps"] == 3
    off = Distiller(load_config(SMOKE, _overrides(data, tmp_path, "{weight: 0.0}")), tmp_path / "off",
                    progress=False)
    assert off.stability is None and "student/stability" not in off.student_step()


@pytest.mark.parametrize("stability, crop, message", [
    ("{weight: -1.0}", "[96, 96]", "loss.stability.weight"),
    ("{weight: 1.0, max_shift: 1.5}", "[96, 96]", "loss.stability.max_shift"),
    ("{weight: 1.0, pool: 0}", "[96, 96]", "loss.stability.pool"),
    ("{weight: 1.0, noise: -0.1}", "[96, 96]", "loss.stability.noise"),
    ("{weight: 1.0, margin: 40}", "[64, 64]", "leaves"),
    ("{weight: 1.0, strength: 2}", "[96, 96]", "loss.stability.strength"),
])
def test_bad_stability_settings_are_refused_with_their_key(tmp_path, stability, crop, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SMOKE, _overrides(tmp_path / "train", tmp_path, stability, crop))
