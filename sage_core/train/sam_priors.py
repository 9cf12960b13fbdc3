"""SAM semantic priors (method.md): masks per modality, semantic patches, and SAM features.

- :func:`build_sam` builds ViT-B/L/H through the ``segment-anything`` package and
  loads a checkpoint given by path (none can be downloaded here), checking that
  the file fits the variant; :func:`build_tiny_sam` builds a small SAM with random
  weights from the same classes, so every code path runs without a checkpoint.
- :class:`MaskCache` keeps the top masks of each image on disk, keyed by the
  image content, the SAM weights and the generator settings: SAM runs once per
  image across epochs and runs.
- :class:`SamFeatures` runs the first blocks of SAM's image encoder (the ``phi``
  of the contrastive loss) on inputs of any size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sage_core.atomic import atomic_path
from sage_core.color import ir_to_gray
from sage_core.errors import CheckpointError, SageError

SAM_VARIANTS = ("vit_b", "vit_l", "vit_h", "tiny")
#: Encoder width of each released variant, read from ``image_encoder.patch_embed.proj.weight``.
_EMBED_DIM = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


class SamError(SageError):
    """SAM cannot be built or run as configured."""


@dataclass(frozen=True)
class GeneratorSettings:
    """SamAutomaticMaskGenerator settings; defaults are the paper's."""

    points_per_side: int = 128
    pred_iou_thresh: float = 0.86
    stability_score_thresh: float = 0.92
    crop_n_layers: int = 1
    crop_n_points_downscale_factor: int = 2
    min_mask_region_area: int = 100
    points_per_batch: int = 64

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class SamModel:
    """A built SAM with a stable identity for cache keys (variant + weights digest)."""

    sam: nn.Module
    variant: str
    weights_id: str
    random_weights: bool


def _require_segment_anything():
    try:
        import segment_anything
    except ImportError:
        raise SamError("segment-anything is not installed: pip install -e .[sam]") from None
    return segment_anything


def _state_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_sam(variant: str, checkpoint: str | os.PathLike) -> SamModel:
    """ViT-B/L/H SAM from a checkpoint file; a file of another variant is refused with its real variant."""
    if variant not in ("vit_b", "vit_l", "vit_h"):
        raise SamError(f"SAM variant {variant!r}; expected vit_b, vit_l or vit_h (or tiny for tests)")
    segment_anything = _require_segment_anything()
    path = Path(checkpoint)
    if not path.is_file():
        raise SamError(f"{path}: SAM checkpoint not found (download sam_{variant}_*.pth from the SAM release)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"{path}: not a readable SAM checkpoint: {str(exc).splitlines()[0]}") from None
    key = "image_encoder.patch_embed.proj.weight"
    if not isinstance(state, dict) or key not in state:
        raise CheckpointError(f"{path}: not a SAM checkpoint (no {key})")
    found = _EMBED_DIM.get(int(state[key].shape[0]), f"unknown (width {state[key].shape[0]})")
    if found != variant:
        raise CheckpointError(f"{path}: this is a SAM {found} checkpoint, but variant {variant} was requested")
    sam = segment_anything.sam_model_registry[variant]()
    sam.load_state_dict(state, strict=True)
    sam.eval()
    digest = hashlib.sha256(path.read_bytes()[: 1 << 20]).hexdigest()[:16]  # first MiB: cheap, unique enough
    return SamModel(sam, variant, f"{variant}:{digest}:{path.stat().st_size}", random_weights=False)


def build_tiny_sam(seed: int = 0, img_size: int = 256) -> SamModel:
    """A small SAM (~0.34 M parameters) with random weights, from the package's own model classes."""
    _require_segment_anything()
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    embed = 64
    grid = img_size // 16
    sam = Sam(
        image_encoder=ImageEncoderViT(depth=2, embed_dim=embed, img_size=img_size, mlp_ratio=2,
                                      norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16,
                                      qkv_bias=True, use_rel_pos=True, global_attn_indexes=[1], window_size=8,
                                      out_chans=embed),
        prompt_encoder=PromptEncoder(embed_dim=embed, image_embedding_size=(grid, grid),
                                     input_image_size=(img_size, img_size), mask_in_chans=8),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=embed, mlp_dim=128, num_heads=2),
                                 transformer_dim=embed, iou_head_depth=2, iou_head_hidden_dim=64),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    return SamModel(sam, "tiny", f"tiny:{_state_digest(sam)}", random_weights=True)


def load_sam(variant: str, checkpoint: str | None, seed: int = 0) -> SamModel:
    """``tiny`` -> random small SAM; otherwise a real variant from ``checkpoint``."""
    if variant == "tiny":
        return build_tiny_sam(seed)
    if not checkpoint:
        raise SamError(f"SAM variant {variant} needs a checkpoint path (sam.checkpoint); none can be downloaded here")
    return build_sam(variant, checkpoint)


# ----- masks -------------------------------------------------------------------------------------------

def image_digest(image: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{image.shape}{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class MaskCache:
    """Top masks per (image content, SAM weights, generator settings), stored bit-packed on disk."""

    def __init__(self, root: str | os.PathLike, sam: SamModel, settings: GeneratorSettings, keep: int = 20) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sam, self.settings, self.keep = sam, settings, keep
        self._generator = None
        self.hits = self.misses = 0
        self._context = hashlib.sha256(f"{sam.weights_id}|{settings.key()}|{keep}".encode()).hexdigest()[:16]

    def path_for(self, image: np.ndarray) -> Path:
        return self.root / self._context / f"{image_digest(image)}.npz"

    def _generate(self, rgb: np.ndarray) -> np.ndarray:
        if self._generator is None:
            from segment_anything import SamAutomaticMaskGenerator

            self._generator = SamAutomaticMaskGenerator(self.sam.sam, **asdict(self.settings))
        with torch.inference_mode():
            found = self._generator.generate(rgb)
        found.sort(key=lambda m: m["area"], reverse=True)
        if not found:
            return np.zeros((0,) + rgb.shape[:2], bool)
        return np.stack([m["segmentation"] for m in found[: self.keep]]).astype(bool)

    def masks(self, image: np.ndarray) -> np.ndarray:
        """Masks of an H x W (gray) or H x W x 3 (RGB) uint8 image, largest first, (n <= keep, H, W) bool."""
        path = self.path_for(image)
        if path.is_file():
            try:
                with np.load(path) as stored:
                    count, height, width = (int(v) for v in stored["shape"])
                    bits = np.unpackbits(stored["bits"])[: count * height * width]
                self.hits += 1
                return bits.reshape(count, height, width).astype(bool)
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)  # a damaged entry is regenerated, not trusted
        self.misses += 1
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        masks = self._generate(np.ascontiguousarray(rgb))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, shape=np.array(masks.shape), bits=np.packbits(masks.ravel()))
        return masks


def sam_inputs(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A pair as read from disk -> what SAM's mask generator takes: thermal gray uint8, visible RGB uint8."""
    ir8 = np.clip(ir_to_gray(ir) * 255 + 0.5, 0, 255).astype(np.uint8)
    bgr = vis if vis.ndim == 3 else np.repeat(vis[..., None], 3, axis=2)
    rgb = np.ascontiguousarray(bgr[..., 2::-1])
    return ir8, rgb if rgb.dtype == np.uint8 else (rgb // 257).astype(np.uint8)


# ----- features for the contrastive loss ---------------------------------------------------------------

class SamFeatures(nn.Module):
    """SAM's patch embedding and first ``blocks`` encoder blocks, frozen: the ``phi`` of the contrastive loss.

    As released: the [0, 1] gray image repeated to 3 channels, without SAM's pixel normalisation,
    and every block's output is returned (two blocks for ViT-B). The absolute position embedding
    is resized to the input's patch grid, so crops need not be SAM's 1024x1024 (window-attention
    blocks are size-agnostic).
    """

    def __init__(self, sam: SamModel, blocks: int = 2) -> None:
        super().__init__()
        encoder = sam.sam.image_encoder
        if not 1 <= blocks <= len(encoder.blocks):
            raise SamError(f"sam.feature_blocks must be in 1..{len(encoder.blocks)}, got {blocks}")
        self.patch_embed = encoder.patch_embed
        self.pos_embed = encoder.pos_embed
        self.blocks = nn.ModuleList(encoder.blocks[:blocks])
        self.requires_grad_(False)
        self.eval()

    def forward(self, gray: torch.Tensor) -> list[torch.Tensor]:
        """``(N, 1, H, W)`` in [0, 1] -> each block's features ``(N, C, H/16, W/16)``."""
        x = self.patch_embed(gray.expand(-1, 3, -1, -1))  # (N, h, w, C)
        if self.pos_embed is not None:
            pos = self.pos_embed.permute(0, 3, 1, 2)
            pos = F.interpolate(pos, size=x.shape[1:3], mode="bilinear", align_corners=False)
            x = x + pos.permute(0, 2, 3, 1)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x.permute(0, 3, 1, 2))
        return outputs
