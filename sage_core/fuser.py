"""The one inference API: numpy thermal + visible images in, fused BGR uint8 out.

``sage-fuse``, the ROS node, the demo and the benchmarks all go through
:class:`Fuser`, so that a fix or speed-up here reaches every user at once.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from sage_core.backends import Backend, TorchBackend, load_backend
from sage_core.backends.affine_cpu import CoefficientFilter
from sage_core.checkpoint import CheckpointInfo
from sage_core.chroma_gain import scale_chroma, scale_chroma_torch
from sage_core.color import (
    LumaChroma,
    gray_to_uint8,
    ir_to_gray,
    ir_to_gray_torch,
    recompose_bgr,
    recompose_bgr_torch,
    vis_to_luma_chroma,
    vis_to_luma_chroma_torch,
)
from sage_core.errors import FusionInputError
from sage_core.models import ARCHITECTURES, FusionModel
from sage_core.options import DEFAULT_WEIGHTS, InferenceOptions, resolve_device

__all__ = ["DEFAULT_WEIGHTS", "Fuser", "LuminanceFuser", "resolve_device"]


class LuminanceFuser:
    """The colour pipeline around a luminance fusion rule (method.md): subclasses give ``fuse_luminance``.

    Networks (:class:`Fuser`) and the classical baselines share it, so every method
    is compared through exactly the same colour conversion.
    """

    name = "fuser"
    #: Whether :meth:`fuse_planes` also gives a gain on the visible chroma (a model with a chroma output).
    chroma_output = False

    def fuse_luminance(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """Visible luminance and thermal, float32 H x W in [0, 1] -> fused luminance (clamped later)."""
        raise NotImplementedError

    @staticmethod
    def _planes(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, LumaChroma]:
        if ir.shape[:2] != vis.shape[:2]:
            raise FusionInputError(
                f"thermal is {ir.shape[1]}x{ir.shape[0]} but visible is {vis.shape[1]}x{vis.shape[0]} "
                "(W x H); both must have the same size"
            )
        return ir_to_gray(ir), vis_to_luma_chroma(vis, chroma_uint8=True)

    @property
    def filters_coefficients(self) -> bool:
        """Whether a ``coefficient_filter`` given to :meth:`fuse` takes effect (an affine model's CPU split)."""
        return False

    def fuse_luminance_filtered(self, y: np.ndarray, ir: np.ndarray,
                                coefficient_filter: CoefficientFilter | None) -> np.ndarray:
        """:meth:`fuse_luminance` with the model's coefficients through ``coefficient_filter``, where it has them."""
        return self.fuse_luminance(y, ir)

    def fuse(self, ir: np.ndarray, vis: np.ndarray, coefficient_filter: CoefficientFilter | None = None) -> np.ndarray:
        """Thermal (1/3-channel, 8/16-bit or float [0, 1]) + visible BGR -> fused BGR uint8.

        Both images must have the same height and width; align or resize them first. ``coefficient_filter``:
        see :attr:`filters_coefficients` (the temporal smoothing of ``FramePipeline``).
        """
        gray_ir, luma = self._planes(ir, vis)
        if self.chroma_output:
            fused, gain = self.fuse_planes(luma.y, gray_ir)
            return recompose_bgr(fused, *scale_chroma(luma.cr, luma.cb, gain))
        return recompose_bgr(self.fuse_luminance_filtered(luma.y, gray_ir, coefficient_filter), luma.cr, luma.cb)

    def fuse_planes(self, y: np.ndarray, ir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fused luminance and the chroma gain, each H x W float32 (models with :attr:`chroma_output`)."""
        raise NotImplementedError(f"{self.name} has no chroma output")

    def fuse_gray(self, ir: np.ndarray, vis: np.ndarray,
                  coefficient_filter: CoefficientFilter | None = None) -> np.ndarray:
        """Like :meth:`fuse`, but returns the fused luminance alone as a uint8 H x W image."""
        gray_ir, luma = self._planes(ir, vis)
        return gray_to_uint8(self.fuse_luminance_filtered(luma.y, gray_ir, coefficient_filter))


class Fuser(LuminanceFuser):
    """A fusion network on a device behind an inference backend, ready to fuse pairs of any size.

    Built from a model (eager PyTorch) or from a model file with :meth:`from_options` (or its
    shorthand :meth:`from_weights`), which accepts our checkpoints, the released student and exported
    artefacts, and picks the backend (``auto``: the fastest available here; see
    :mod:`sage_core.backends`). The model is loaded once. On a GPU, colour conversion runs on the GPU
    too, next to the model.
    """

    def __init__(self, model: FusionModel | Backend, device: str | torch.device = "auto",
                 info: CheckpointInfo | None = None, decisions: list[str] | None = None, fallback: str = "") -> None:
        if isinstance(model, Backend):
            self.backend = model
        else:
            self.backend = TorchBackend(model, resolve_device(device))
        self.device = self.backend.device
        self.info = info
        self.decisions = decisions or []
        #: Why faster backends were not used although available (``auto``: their build or load failed); '' if none.
        self.fallback = fallback
        self._arch = info.arch if info else getattr(model, "arch", self.backend.name)
        self.colour_on_device = self.backend.tensors and self.device.type == "cuda"

    @classmethod
    def from_options(cls, options: InferenceOptions) -> Fuser:
        """Load the model file ``options`` names (or the shipped default) on the backend they choose."""
        loaded = load_backend(options)
        return cls(loaded.backend, info=loaded.info, decisions=loaded.decisions, fallback=loaded.fallback)

    @classmethod
    def from_weights(cls, model_file_path: str | os.PathLike | None = None, **options) -> Fuser:
        """Shorthand: ``Fuser.from_weights(path, device="cpu")`` is ``from_options(InferenceOptions(path, ...))``."""
        return cls.from_options(InferenceOptions(model_file_path=model_file_path, **options))

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._arch

    @property
    def chroma_output(self) -> bool:  # type: ignore[override]
        return getattr(ARCHITECTURES.get(self._arch), "chroma_output", False)

    def fuse_planes(self, y: np.ndarray, ir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if y.shape != ir.shape or y.ndim != 2:
            raise FusionInputError(f"luminance {y.shape} and thermal {ir.shape} must be equal H x W arrays")
        planes = self.backend.run_numpy_planes(y, ir)
        return planes[0], planes[1]

    @property
    def description(self) -> str:
        return f"{self._arch} via {self.backend.name} ({self.backend.detail}) on {self.device}"

    def fuse_luminance(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """Visible luminance and thermal, float32 H x W in [0, 1] -> fused luminance (unclamped)."""
        if y.shape != ir.shape or y.ndim != 2:
            raise FusionInputError(f"luminance {y.shape} and thermal {ir.shape} must be equal H x W arrays")
        return self.backend.run_numpy(y, ir)

    @property
    def filters_coefficients(self) -> bool:
        return self.backend.split_affine and not self.colour_on_device

    def fuse_luminance_filtered(self, y: np.ndarray, ir: np.ndarray,
                                coefficient_filter: CoefficientFilter | None) -> np.ndarray:
        if coefficient_filter is None:
            return self.fuse_luminance(y, ir)
        if y.shape != ir.shape or y.ndim != 2:
            raise FusionInputError(f"luminance {y.shape} and thermal {ir.shape} must be equal H x W arrays")
        return self.backend.run_numpy_filtered(y, ir, coefficient_filter)

    def fuse(self, ir: np.ndarray, vis: np.ndarray, coefficient_filter: CoefficientFilter | None = None) -> np.ndarray:
        if self.colour_on_device:  # the full graph on the device: no coefficients to filter
            return self._fuse_on_device(ir, vis)
        return super().fuse(ir, vis, coefficient_filter)

    def _fuse_on_device(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """The colour pipeline as torch operations on the model's device (one upload, one download)."""
        gray_ir, luma = self._planes_torch(ir, vis)
        with torch.inference_mode():
            planes = self.backend.run(luma[0][None, None], gray_ir[None, None])[0]
            chroma = scale_chroma_torch(luma[1], luma[2], planes[1]) if self.chroma_output else luma[1:]
            return recompose_bgr_torch(planes[0], *chroma).cpu().numpy()

    def _planes_torch(self, ir: np.ndarray, vis: np.ndarray):
        if ir.shape[:2] != vis.shape[:2]:
            self._planes(ir, vis)  # raises the standard size error
        return (ir_to_gray_torch(torch.from_numpy(np.ascontiguousarray(ir)).to(self.device)),
                vis_to_luma_chroma_torch(torch.from_numpy(np.ascontiguousarray(vis)).to(self.device)))

    def warmup(self, height: int | None = None, width: int | None = None) -> None:
        """Run one dummy frame so the first real frame does not pay for lazy initialisation; by default at the
        backend's :attr:`~sage_core.backends.Backend.warmup_shape` (a compiled engine's tuned shape)."""
        default_height, default_width = self.backend.warmup_shape
        zeros = np.zeros((height or default_height, width or default_width), np.float32)
        self.fuse_luminance(zeros, zeros)
