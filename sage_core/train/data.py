"""Training data: image pairs read once into memory, SAM masks packed as bit planes, cached outputs of a
frozen teacher, and the random crops each step samples.

Datasets follow one layout: ``NAME/ir/<stem>.<ext>`` and ``NAME/vis/<stem>.<ext>``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sage_core.atomic import atomic_path
from sage_core.checkpoint import file_sha256
from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.errors import ConfigError
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.models import FusionModel
from sage_core.train.config import MAX_MASK_PLANES, DistillConfig, build_section
from sage_core.train.sam_priors import GeneratorSettings, MaskCache, image_digest, load_sam, sam_inputs
from sage_core.train.segmentation import LabelSource

#: Integer types of one packed mask array by planes: (bits, unsigned, stored). 16 and 32 bits are stored
#: signed because torch shifts signed integers; the top bit is then the sign, and shifts still read it.
_PACK_TYPES = ((8, np.uint8, np.uint8), (16, np.uint16, np.int16), (32, np.uint32, np.int32))


def pack_masks(masks: np.ndarray, planes: int) -> np.ndarray:
    """Up to ``planes`` masks (largest first) as bit planes of one H x W integer array (8, 16 or 32 bits)."""
    for bits, unsigned, stored in _PACK_TYPES:
        if planes <= bits:
            packed = np.zeros(masks.shape[1:], np.int64)
            for bit, mask in enumerate(masks[:planes]):
                packed |= mask.astype(np.int64) << bit
            return packed.astype(unsigned).view(stored)
    raise ConfigError(f"sam.keep: expected at most {MAX_MASK_PLANES} masks per image, got {planes}")


def unpack_masks(packed: torch.Tensor, k: int, planes: int, min_pixels: int = 16) -> torch.Tensor:
    """Packed crops ``(N, 1, h, w)`` -> ``(N, K, h, w)`` float: the first K masks non-empty in each crop,
    padded with all-ones (the unmasked source) when fewer."""
    bits = torch.stack([(packed[:, 0].long() >> b) & 1 for b in range(planes)], dim=1).float()  # (N, P, h, w)
    out = torch.ones(packed.shape[0], k, *packed.shape[2:])
    for n in range(packed.shape[0]):
        present = [b for b in range(planes) if bits[n, b].sum() >= min_pixels][:k]
        for slot, b in enumerate(present):
            out[n, slot] = bits[n, b]
    return out


def load_training_items(pairs: list, crop: tuple[int, int], cache: MaskCache | None, rank: int = 0, world: int = 1,
                        progress: bool = True, teacher_outputs: TeacherOutputCache | None = None,
                        labels: LabelSource | None = None,
                        chroma: bool = False) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Named H x W planes per image of this process's shard (every world-th pair): ``y``, ``ir``, and
    ``reference`` (a frozen teacher's output), ``ir_masks``/``vis_masks`` (packed SAM masks),
    ``cr``/``cb``/``labels`` (segmentation term) when those are configured; ``cr``/``cb`` also with
    ``chroma`` (the detection term sees colour frames).

    Every image is checked against the crop size before SAM runs on any. SAM masks come from the
    cache, so SAM runs once per image across epochs and runs.
    """
    chosen = pairs[rank::world]
    if not chosen:
        raise ConfigError(f"process {rank} of {world} has no training images ({len(pairs)} in all)")
    images = [read_pair(pair) for pair in chosen]
    small = [p.ir for p, (ir, _) in zip(chosen, images) if ir.shape[0] < crop[0] or ir.shape[1] < crop[1]]
    if small:
        raise ConfigError(f"data.crop: crop {crop[0]}x{crop[1]} (H x W) is larger than {len(small)} training "
                          f"image(s), the first {small[0]}")
    items = []
    for pair, (ir, vis) in tqdm(list(zip(chosen, images)), desc="preparing training pairs" + (
            " + SAM masks" if cache else ""), unit="pair", disable=not progress):
        luma = vis_to_luma_chroma(vis)
        planes = {"y": luma.y, "ir": ir_to_gray(ir)}
        if teacher_outputs is not None:
            planes["reference"] = teacher_outputs.output(planes["y"], planes["ir"])
        if cache is not None:
            ir8, vis_rgb = sam_inputs(ir, vis)
            planes["ir_masks"] = pack_masks(cache.masks(ir8), cache.keep)
            planes["vis_masks"] = pack_masks(cache.masks(vis_rgb), cache.keep)
        if labels is not None or chroma:
            planes.update(cr=luma.cr, cb=luma.cb)
        if labels is not None:
            planes["labels"] = labels.read(pair, planes["y"].shape)
        items.append(planes)
    return items, [str(p.ir) for p in chosen]


def _all_pairs(config: DistillConfig) -> list:
    pairs = []
    for folder in config.data.train:
        found = dataset_pairs(folder)
        pairs += found[: config.data.max_images] if config.data.max_images else found
    if config.data.holdout and config.data.holdout >= len(pairs):
        raise ConfigError(f"data.holdout {config.data.holdout} leaves no training pairs (there are {len(pairs)})")
    return pairs


def training_pairs(config: DistillConfig) -> list:
    """The training pairs of every data.train folder (at most data.max_images each), minus the holdout."""
    pairs = _all_pairs(config)
    return pairs[: len(pairs) - config.data.holdout] if config.data.holdout else pairs


def validation_pairs(config: DistillConfig) -> list:
    """data.val's pairs, or the held-out end of the training pairs; at most data.val_max_images."""
    if config.data.val:
        pairs = dataset_pairs(config.data.val)
    else:
        pairs = _all_pairs(config)[-config.data.holdout:] if config.data.holdout else []
    return pairs[: config.data.val_max_images]


class TeacherOutputCache:
    """Outputs of a frozen teacher on whole training images, float16 on disk, keyed by teacher and image."""

    def __init__(self, root: str | os.PathLike, teacher: FusionModel, teacher_file: str, device: torch.device):
        self.root = Path(root) / file_sha256(teacher_file)[:16]
        self.root.mkdir(parents=True, exist_ok=True)
        self.teacher, self.device = teacher, device

    def output(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        path = self.root / f"{image_digest(np.stack((y, ir)))}.npy"
        if path.is_file():
            return np.load(path).astype(np.float32)
        with torch.no_grad():
            reference = self.teacher(torch.from_numpy(y)[None, None].to(self.device),
                                     torch.from_numpy(ir)[None, None].to(self.device))[0, 0].float().cpu().numpy()
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, reference.astype(np.float16))
        return reference


def mask_cache(config: DistillConfig) -> MaskCache:
    """The SAM and mask cache a config describes (the same key for mask generation and training)."""
    sam = load_sam(config.sam.variant, config.sam.checkpoint, seed=config.run.seed)
    return MaskCache(config.sam.cache_dir, sam, build_section(GeneratorSettings, config.sam.generator, "sam.generator"),
                     keep=config.sam.keep)

