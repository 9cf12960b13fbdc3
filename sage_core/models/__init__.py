"""Fusion networks and the registry that rebuilds them from a checkpoint's name and config."""

from __future__ import annotations

from sage_core.errors import CheckpointError
from sage_core.models.affine_fuse import AffineFuse
from sage_core.models.base import CpuSplit, FusionModel
from sage_core.models.chroma_fuse import AffineChromaFuse
from sage_core.models.lite_fuse import LiteFuse
from sage_core.models.sage_student import SageStudent
from sage_core.models.spa_teacher import SPATeacher

#: Architecture name (as stored in checkpoints) -> model class.
ARCHITECTURES: dict[str, type[FusionModel]] = {
    SageStudent.arch: SageStudent,
    LiteFuse.arch: LiteFuse,
    SPATeacher.arch: SPATeacher,
    AffineFuse.arch: AffineFuse,
    AffineChromaFuse.arch: AffineChromaFuse,
}


def build_model(arch: str, config: dict | None = None) -> FusionModel:
    """Build an untrained model of a registered architecture from its config."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise CheckpointError(
            f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    try:
        return cls(**(config or {}))
    except TypeError as exc:
        raise CheckpointError(f"config {config!r} does not fit architecture {arch!r}: {exc}") from None


__all__ = ["ARCHITECTURES", "AffineChromaFuse", "AffineFuse", "CpuSplit", "FusionModel", "LiteFuse", "SPATeacher",
           "SageStudent", "build_model"]
