"""sage_core: thermal + visible image fusion (SAGE), free of any ROS dependency.

The public API, importable from here::

    from sage_core import Fuser, InferenceOptions
    fuser = Fuser.from_options(InferenceOptions(device="auto"))   # the shipped default model
    fused_bgr = fuser.fuse(thermal, visible_bgr)

Layout (docs/architecture.md): the inference path at the top level (fuser, color, thermal,
alignment, pipeline, checkpoint, options, backends/), models/, train/ (distillation), eval/ (metrics,
baselines, evaluation), cli/ (every command's arguments and main). Importing this package loads
nothing from train/ or eval/; names below are imported on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> module that defines it (imported lazily, PEP 562).
_EXPORTS = {
    "Fuser": "sage_core.fuser",
    "LuminanceFuser": "sage_core.fuser",
    "InferenceOptions": "sage_core.options",
    "DEFAULT_WEIGHTS": "sage_core.options",
    "resolve_device": "sage_core.options",
    "Camera": "sage_core.cameras",
    "FramePipeline": "sage_core.pipeline",
    "ThermalNormalizer": "sage_core.thermal",
    "ThermalNormalizerConfig": "sage_core.thermal",
    "Aligner": "sage_core.alignment",
    "AlignmentConfig": "sage_core.alignment",
    "SageError": "sage_core.errors",
    "ConfigError": "sage_core.errors",
    "FusionInputError": "sage_core.errors",
    "CheckpointError": "sage_core.errors",
    "BackendError": "sage_core.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sage_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
