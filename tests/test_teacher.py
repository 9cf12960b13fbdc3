"""The SPA teacher as released (structure, parameter count, persistent repository) and the released
definitions of the feature and contrastive losses (method.md, issue 13)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sage_core.models import SageStudent, build_model
from sage_core.models.spa_attention import SpatialTransformer
from sage_core.models.spa_teacher import SPAStage
from sage_core.train.crops import make_batch
from sage_core.train.data import pack_masks, unpack_masks
from sage_core.train.losses import contrastive_loss, feature_loss, features_match, semantic_distance

RELEASED_PARAMETERS = 2_639_505  # the released teacher with K = 4, without its unused conv and Sobel filter


@pytest.fixture(scope="module")
def released() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("spa_teacher", {"patches": 4}).eval()


def test_released_structure_and_parameter_count(released):
    trainable = sum(p.numel() for p in released.parameters() if p.requires_grad)
    assert abs(trainable - RELEASED_PARAMETERS) <= 0.01 * RELEASED_PARAMETERS, trainable
    assert trainable == RELEASED_PARAMETERS
    # One stage module (five attention blocks, shared by all five applications in the U).
    assert sum(isinstance(m, SPAStage) for m in released.modules()) == 1
    assert sum(isinstance(m, SpatialTransformer) for m in released.modules()) == 5


def test_forward_features_are_five_32_channel_maps_at_full_half_quarter_half_full(released):
    calls = []
    hook = released.stage.register_forward_hook(lambda *_: calls.append(1))
    y, ir = torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        fused, features = released.forward_features(y, ir, torch.rand(2, 4, 32, 48), torch.rand(2, 4, 32, 48))
    hook.remove()
    assert fused.shape == (2, 1, 32, 48) and len(calls) == 5
    assert [tuple(f.shape) for f in features] == [(2, 32, 32, 48), (2, 32, 16, 24), (2, 32, 8, 12),
                                                  (2, 32, 16, 24), (2, 32, 32, 48)]


def _record_attention(stage: SPAStage, names: tuple[str, ...]) -> tuple[dict, list]:
    """Record the keys and values each named block's attentions are handed (inputs 1 and 2 of Attention)."""
    seen: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name in names:
        block = getattr(stage, name)
        for kind in ("self_attn", "cross_attn"):
            key = f"{name}.{kind}"
            handles.append(getattr(block, kind).register_forward_hook(
                lambda _m, args, _out, key=key: seen.setdefault(key, []).extend(a.detach().clone() for a in args[1:])))
    return seen, handles


def test_image_blocks_attend_only_to_image_keys_and_values(released):
    """Persistent repository: other patches leave the image blocks' keys/values unchanged, yet change the output."""
    stage = released.stage
    image = torch.rand(1, 64, 16, 24)
    patches_a = torch.rand(1, 64, 16, 24), torch.rand(1, 64, 16, 24)
    patches_b = torch.rand(1, 64, 16, 24), torch.rand(1, 64, 16, 24)
    runs = []
    for ir_p, vis_p in (patches_a, patches_b):
        seen, handles = _record_attention(stage, ("image_first", "image_second", "ir_block"))
        with torch.no_grad():
            out = stage(image, ir_p, vis_p)[0]
        for handle in handles:
            handle.remove()
        runs.append((seen, out))
    (seen_a, out_a), (seen_b, out_b) = runs
    for key in ("image_first.self_attn", "image_first.cross_attn", "image_second.cross_attn"):
        assert all(torch.equal(a, b) for a, b in zip(seen_a[key], seen_b[key])), key
    assert all(torch.equal(a, b) for a, b in zip(seen_a["ir_block.cross_attn"], seen_b["ir_block.cross_attn"]))
    assert not torch.equal(seen_a["ir_block.self_attn"][0], seen_b["ir_block.self_attn"][0])  # the patches did change
    assert (out_a - out_b).abs().max() > 1e-4  # semantics reach the image path by concatenation
    with torch.no_grad():
        y, ir = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
        fused_a = released(y, ir)
        fused_b = released.forward_features(y, ir, torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32))[0]
    assert (fused_a - fused_b).abs().max() > 1e-6


def test_released_student_pairs_with_the_teacher_heads_without_projections(released):
    probe = torch.zeros(1, 1, 32, 32)
    with torch.no_grad():
        teacher = [f.shape for f in released.forward_features(probe, probe)[1]]
        student = [f.shape for f in SageStudent().forward_features(probe, probe)[1]]
        lite = [f.shape for f in build_model("lite_fuse", {"width": 8}).forward_features(probe, probe)[1]]
    assert features_match(student, teacher)
    assert not features_match(lite, teacher)


def test_feature_loss_is_one_cosine_per_whole_map():
    torch.manual_seed(0)
    teacher = [torch.rand(2, 4, 8, 8) + 0.1 for _ in range(5)]
    # Scaling each pixel by its own positive factor keeps every per-pixel cosine at 1 but not the whole map's.
    per_pixel_scale = [t * torch.rand(2, 1, 8, 8).mul(5).add(0.1) for t in teacher]
    assert float(feature_loss(per_pixel_scale, teacher)) > 0.05
    assert float(feature_loss([3.0 * t for t in teacher], teacher)) == pytest.approx(0.0, abs=1e-5)
    assert float(feature_loss([-t for t in teacher], teacher)) == pytest.approx(10.0, abs=1e-4)  # 5 pairs x 2


def _phi(x: torch.Tensor) -> list[torch.Tensor]:
    """A stand-in for SAM's first two blocks: two fixed, different feature maps."""
    first = F.avg_pool2d(x, 4)
    return [first.repeat(1, 3, 1, 1), torch.cat((first ** 2, first), 1)]


def test_semantic_distance_is_the_l2_norm_of_instance_normalised_differences():
    a, b = [torch.rand(2, 3, 4, 4)], [torch.rand(2, 3, 4, 4)]
    expected = math.sqrt(float(((F.instance_norm(a[0]) - F.instance_norm(b[0])) ** 2).sum()))
    assert float(semantic_distance(a, b)) == pytest.approx(expected, rel=1e-5)


def test_contrastive_loss_sums_over_patches_and_skips_empty_ones():
    torch.manual_seed(1)
    fused, reference, ir, y = (torch.rand(2, 1, 16, 16) for _ in range(4))
    ir_p, vis_p = ir * (torch.rand(2, 3, 16, 16) > 0.5), y * (torch.rand(2, 3, 16, 16) > 0.5)
    total = float(contrastive_loss(fused, reference, [ir, y], [ir_p, vis_p], _phi))
    one_by_one = sum(float(contrastive_loss(fused, reference, [ir, y], [ir_p[:, [k]], vis_p[:, [k]]], _phi))
                     for k in range(3))
    assert total == pytest.approx(one_by_one, rel=1e-4) and total > 0.5  # summed (6 terms near 1), not averaged
    assert float(contrastive_loss(reference, reference, [ir, y], [ir_p, vis_p], _phi)) == pytest.approx(0, abs=1e-6)
    empty = torch.zeros(2, 1, 16, 16)
    with_empty = float(contrastive_loss(fused, reference, [ir, y], [torch.cat((ir_p, empty), 1),
                                                                    torch.cat((vis_p, empty), 1)], _phi))
    assert with_empty == pytest.approx(total, rel=1e-5)


def test_batches_carry_intensity_patches_not_binary_masks():
    """Teacher and contrastive loss get S * m (the released patches), padded with S itself when masks run out."""
    masks = np.zeros((3, 8, 8), bool)
    masks[0, :4], masks[1, 4:], masks[2, :, :2] = True, True, True
    crops = {"y": torch.rand(1, 1, 8, 8), "ir": torch.rand(1, 1, 8, 8),
             "ir_masks": torch.from_numpy(pack_masks(masks, 20))[None, None],
             "vis_masks": torch.from_numpy(pack_masks(masks[:1], 20))[None, None]}
    batch = make_batch(crops, 4, 20, torch.device("cpu"))
    binary = unpack_masks(crops["ir_masks"], 4, 20)
    assert torch.equal(batch.ir_patches, crops["ir"] * binary)
    assert torch.equal(batch.ir_patches[:, 3], crops["ir"][:, 0])  # three masks: the fourth patch is the source
    assert torch.equal(batch.vis_patches[:, 0], crops["y"][:, 0] * torch.from_numpy(masks[0]).float())


def test_sam_features_are_two_blocks_without_pixel_normalisation():
    pytest.importorskip("segment_anything", reason="segment-anything not installed (pip install -e .[sam])")
    from sage_core.train.sam_priors import SamFeatures, build_tiny_sam

    sam = build_tiny_sam(0)
    phi = SamFeatures(sam, 2)
    gray = torch.rand(1, 1, 64, 96)
    encoder = sam.sam.image_encoder
    with torch.no_grad():
        outputs = phi(gray)
        x = encoder.patch_embed(gray.repeat(1, 3, 1, 1))  # the [0, 1] image as is
        pos = F.interpolate(encoder.pos_embed.permute(0, 3, 1, 2), size=x.shape[1:3], mode="bilinear",
                            align_corners=False).permute(0, 2, 3, 1)
        first = encoder.blocks[0](x + pos)
        second = encoder.blocks[1](first)
    assert len(outputs) == 2
    assert torch.allclose(outputs[0], first.permute(0, 3, 1, 2), atol=1e-5)
    assert torch.allclose(outputs[1], second.permute(0, 3, 1, 2), atol=1e-5)


def test_all_kept_masks_are_packed_not_only_eight():
    """sam.keep 20: masks 9..12 are reachable when the first eight are empty in a crop."""
    masks = np.zeros((20, 8, 8), bool)
    for index in range(9, 13):
        masks[index, index - 9] = True  # one row each, 8 pixels
    packed = torch.from_numpy(pack_masks(masks, 20))[None, None]
    unpacked = unpack_masks(packed, 4, 20, min_pixels=8)
    assert [int(unpacked[0, k].sum()) for k in range(4)] == [8, 8, 8, 8]
    assert all(bool(unpacked[0, k, k].all()) for k in range(4))
