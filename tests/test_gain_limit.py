"""AffineFuse's gain limit (``gain_limit``): a + b bounded, the block means kept (docs/temporal.md)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sage_core.backends import TorchBackend
from sage_core.checkpoint import load_model, save_checkpoint
from sage_core.errors import CheckpointError
from sage_core.models import AffineFuse, build_model

CPU = torch.device("cpu")


def _amplifying(gain_limit: float) -> AffineFuse:
    """An AffineFuse whose rule adds both cameras at a total gain of about 1.6, varying over the picture."""
    torch.manual_seed(0)
    model = AffineFuse(width=8, dilations=(1, 2), refine=0, gain_limit=gain_limit)
    with torch.no_grad():
        model.coefficients.weight.normal_(0.0, 0.05)
        model.coefficients.bias.copy_(torch.tensor([1.0, 0.6, -0.2]))
    return model.eval()


def _inputs(seed: int = 0, size: tuple[int, int] = (64, 80)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand((1, 1, *size), generator=generator) for _ in range(2))


def _low_and_pooled(model: AffineFuse, y: torch.Tensor, ir: torch.Tensor):
    pooled = F.avg_pool2d(torch.cat((y, ir), 1), model.scale, ceil_mode=True)
    return model.from_pooled(pooled)[0], pooled


def test_the_limit_bounds_a_plus_b_and_keeps_each_blocks_mean():
    free, limited = _amplifying(0.0), _amplifying(1.1)
    limited.load_state_dict(free.state_dict())
    y, ir = _inputs()
    with torch.no_grad():
        low_free, pooled = _low_and_pooled(free, y, ir)
        low, _ = _low_and_pooled(limited, y, ir)
    total_free, total = low_free[:, 0] + low_free[:, 1], low[:, 0] + low[:, 1]
    assert float(total_free.min()) > 1.3  # the free rule amplifies everywhere
    assert float(total.max()) <= 1.1 + 1e-5
    # the low-resolution picture a Y + b ir + c (each block's mean) is the free rule's
    def picture(c):
        return c[:, 0] * pooled[:, 0] + c[:, 1] * pooled[:, 1] + c[:, 2]
    assert float((picture(low) - picture(low_free)).abs().max()) < 1e-5
    # where a + b is already within the limit, nothing changes
    with torch.no_grad():
        assert torch.equal(_low_and_pooled(_amplifying(5.0), y, ir)[0], low_free)


def test_a_limit_of_one_keeps_the_fused_change_within_the_larger_input_change():
    """With the decisions fixed, a <= 1 - b: the fused detail changes by no more than the larger input's."""
    model = _amplifying(1.0)
    y, ir = _inputs(1)
    y2, ir2 = (y + 0.1 * torch.randn_like(y)).clamp(0, 1), (ir + 0.1 * torch.randn_like(ir)).clamp(0, 1)
    with torch.no_grad():
        low, _ = _low_and_pooled(model, y, ir)
    full = F.interpolate(low, size=y.shape[-2:], mode="bilinear", align_corners=False)

    def fused(a, b):
        return full[:, 0:1] * a + full[:, 1:2] * b + full[:, 2:3]
    change = (fused(y2, ir2) - fused(y, ir)).abs()
    assert bool((change <= torch.maximum((y2 - y).abs(), (ir2 - ir).abs()) + 1e-5).all())
    free = _amplifying(0.0)
    with torch.no_grad():
        free_full = F.interpolate(_low_and_pooled(free, y, ir)[0], size=y.shape[-2:], mode="bilinear",
                                  align_corners=False)
    free_change = (free_full[:, 0:1] * (y2 - y) + free_full[:, 1:2] * (ir2 - ir)).abs()
    assert bool((free_change > torch.maximum((y2 - y).abs(), (ir2 - ir).abs()) + 1e-3).any())


def test_the_cpu_split_and_a_checkpoint_keep_the_limit(tmp_path):
    model = _amplifying(1.2)
    y, ir = _inputs(2, (37, 50))  # partial pooling windows
    with torch.no_grad():
        expected = model(y, ir)[0, 0].numpy()
    backend = TorchBackend(model, CPU)
    assert backend.split_affine
    assert np.abs(backend.run_numpy(y[0, 0].numpy(), ir[0, 0].numpy()) - expected).max() < 1e-5
    path = save_checkpoint(model, tmp_path / "limited.pt")
    loaded, info = load_model(path)
    assert info.config["gain_limit"] == 1.2 and loaded.gain_limit == 1.2
    assert "gain_limit" not in AffineFuse().config()  # checkpoints without a limit are written as before
    with pytest.raises(CheckpointError, match="gain_limit"):
        build_model("affine_fuse", {"gain_limit": -1.0})
