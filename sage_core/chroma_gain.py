"""The chroma gain of a model with a chroma output (``FusionModel.chroma_output``): the visible colour scaled
about neutral, ``C' = 0.5 + g (C - 0.5)`` for Cr and Cb, before the usual recomposition (``color.py``).

``g = 1`` keeps the visible colour (what every luminance-only model publishes), ``0.5`` is what the plain
per-channel average of visible and gray thermal does to it, ``0`` is gray."""

from __future__ import annotations

import numpy as np
import torch

from sage_core.color import _UNIT_LUT


def _unit(plane: np.ndarray) -> np.ndarray:
    return _UNIT_LUT[plane] if plane.dtype == np.uint8 else np.asarray(plane, np.float32)


def scale_chroma(cr: np.ndarray, cb: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Visible chroma planes (uint8, or float in [0, 1]) and an H x W gain -> float32 planes in [0, 1]."""
    gain = np.asarray(gain, np.float32)
    return tuple(np.clip(0.5 + gain * (_unit(plane) - 0.5), 0.0, 1.0, dtype=np.float32) for plane in (cr, cb))


def scale_chroma_torch(cr: torch.Tensor, cb: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`scale_chroma` on float tensors in [0, 1] (the colour pipeline on a GPU)."""
    return tuple((0.5 + gain * (plane - 0.5)).clamp(0.0, 1.0) for plane in (cr, cb))
