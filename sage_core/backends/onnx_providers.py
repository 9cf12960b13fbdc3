"""Which ONNX Runtime execution providers run a model, in which order, with which options.

On a CUDA device with ``onnxruntime-gpu`` (or JetPack's build) the chain is TensorRT first (fp16 when asked,
its engine and timing caches in a folder of our engine cache keyed like every other artefact, an
optimisation profile over the same :class:`ShapeProfile` as the torch-tensorrt backend), then CUDA, then
CPU: ONNX Runtime places each node on the first provider that takes it, and when the TensorRT provider
cannot start at all it retries the session with CUDA and CPU only. What ran is read back from the session
(:func:`describe_session`), never assumed. The option names are those of ONNX Runtime's TensorRT and CUDA
providers (checked in onnxruntime-gpu 1.31.1's provider libraries). On a CPU only the CPU provider runs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sage_core.backends.engine_profile import ShapeProfile
from sage_core.errors import BackendError

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

Provider = tuple[str, dict]


def profile_option(profile: ShapeProfile, key: str, input_names: tuple[str, ...]) -> str:
    """The TensorRT provider's ``trt_profile_{min,opt,max}_shapes`` value: ``y:1x1xHxW,ir:1x1xHxW``."""
    height, width = profile.shapes()[key]
    return ",".join(f"{name}:1x1x{height}x{width}" for name in input_names)


def tensorrt_options(device_id: int, fp16: bool, cache_folder: Path, profile: ShapeProfile | None,
                     input_names: tuple[str, ...]) -> dict:
    """Options of ONNX Runtime's TensorRT provider: precision, engine and timing caches, optimisation profile
    (``profile`` None: a file with a fixed input shape, which needs none)."""
    options = {"device_id": device_id, "trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
               "trt_engine_cache_path": str(cache_folder), "trt_timing_cache_enable": True,
               "trt_timing_cache_path": str(cache_folder)}
    if profile is not None:
        for key in ("min", "opt", "max"):
            options[f"trt_profile_{key}_shapes"] = profile_option(profile, key, input_names)
    return options


def provider_chain(available: list[str], device: torch.device, fp16: bool = False,
                   tensorrt_cache: Path | None = None, profile: ShapeProfile | None = None,
                   input_names: tuple[str, ...] = ("y", "ir")) -> list[Provider]:
    """The providers to ask for, first choice first, each with its options. ``available``: what this ONNX
    Runtime has (``get_available_providers()``); ``tensorrt_cache``: the folder for the TensorRT provider's
    engines, None to leave it out (the CPU split's head, whose engine would gain nothing)."""
    if device.type != "cuda":
        return [(CPU, {})]
    if CUDA not in available:
        raise BackendError(f"onnxruntime here has no CUDA execution provider (has {', '.join(available)}); use "
                           "device cpu, or install onnxruntime-gpu (on a Jetson: the wheel built for your JetPack)")
    device_id = device.index or 0
    chain: list[Provider] = []
    if TENSORRT in available and tensorrt_cache is not None:
        chain.append((TENSORRT, tensorrt_options(device_id, fp16, tensorrt_cache, profile, input_names)))
    return chain + [(CUDA, {"device_id": device_id}), (CPU, {})]


def describe_session(requested: list[Provider], used: list[str]) -> tuple[str, str]:
    """(the provider that runs first, a note when ONNX Runtime dropped one asked for; '' otherwise)."""
    dropped = [name for name, _ in requested if name not in used]
    note = ""
    if dropped:
        note = (f"ONNX Runtime could not start {', '.join(dropped)} and runs on {', '.join(used)} (its own "
                "message above says why)")
    return (used[0] if used else "none"), note
