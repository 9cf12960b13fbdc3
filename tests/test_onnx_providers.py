"""ONNX Runtime on a GPU without a GPU: the provider chain and its options (TensorRT, CUDA, CPU), what the
session is asked for, and what it reports having used. The session itself is ONNX Runtime's CPU one behind a
stand-in that reports the providers a GPU build of onnxruntime would."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from sage_core.backends import available, onnx_providers, onnx_runtime
from sage_core.backends.base import BuildContext
from sage_core.backends.engine_profile import ShapeProfile
from sage_core.backends.onnx_providers import CPU, CUDA, TENSORRT, describe_session, provider_chain
from sage_core.backends.onnx_runtime import OnnxRuntimeBackend
from sage_core.checkpoint import load_model
from sage_core.errors import BackendError
from sage_core.fuser import DEFAULT_WEIGHTS
from sage_core.options import InferenceOptions

GPU_BUILD = [TENSORRT, CUDA, CPU]
PROFILE = ShapeProfile((32, 32), (512, 640), (1200, 1920))
needs_ort = pytest.mark.skipif(not available("onnxruntime", torch.device("cpu"))[0], reason="onnxruntime not installed")


def test_on_a_gpu_tensorrt_comes_first_then_cuda_then_cpu_with_their_options(tmp_path):
    chain = provider_chain(GPU_BUILD, torch.device("cuda:1"), fp16=True, tensorrt_cache=tmp_path, profile=PROFILE)
    assert [name for name, _ in chain] == [TENSORRT, CUDA, CPU]
    trt = chain[0][1]
    assert trt["device_id"] == 1 and trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path)
    assert trt["trt_profile_min_shapes"] == "y:1x1x32x32,ir:1x1x32x32"
    assert trt["trt_profile_opt_shapes"] == "y:1x1x512x640,ir:1x1x512x640"
    assert trt["trt_profile_max_shapes"] == "y:1x1x1200x1920,ir:1x1x1200x1920"
    assert chain[1] == (CUDA, {"device_id": 1}) and chain[2] == (CPU, {})
    fp32 = provider_chain(GPU_BUILD, torch.device("cuda"), tensorrt_cache=tmp_path, profile=None)[0][1]
    assert fp32["trt_fp16_enable"] is False and fp32["device_id"] == 0 and "trt_profile_min_shapes" not in fp32


def test_without_the_tensorrt_provider_or_its_cache_folder_cuda_leads_and_a_cpu_runs_alone(tmp_path):
    assert [n for n, _ in provider_chain([CUDA, CPU], torch.device("cuda"), tensorrt_cache=tmp_path)] == [CUDA, CPU]
    assert [n for n, _ in provider_chain(GPU_BUILD, torch.device("cuda"), tensorrt_cache=None)] == [CUDA, CPU]
    assert provider_chain(GPU_BUILD, torch.device("cpu"), tensorrt_cache=tmp_path) == [(CPU, {})]
    with pytest.raises(BackendError, match="no CUDA execution provider.*install onnxruntime-gpu"):
        provider_chain(["AzureExecutionProvider", CPU], torch.device("cuda"))


def test_what_ran_is_read_from_the_session_and_a_dropped_provider_is_said():
    chain = [(TENSORRT, {}), (CUDA, {}), (CPU, {})]
    assert describe_session(chain, [TENSORRT, CUDA, CPU]) == (TENSORRT, "")
    first, note = describe_session(chain, [CUDA, CPU])
    assert first == CUDA and "could not start TensorrtExecutionProvider" in note


class GpuOnnxRuntime:
    """onnxruntime as a GPU build reports itself; sessions are the real CPU ones, recording what was asked."""

    def __init__(self, starts: list[str]) -> None:
        import onnxruntime

        self.real, self.starts, self.sessions = onnxruntime, starts, []
        self.SessionOptions = onnxruntime.SessionOptions
        self.GraphOptimizationLevel = onnxruntime.GraphOptimizationLevel
        self.__version__ = onnxruntime.__version__

    def get_available_providers(self) -> list[str]:
        return list(GPU_BUILD)

    def InferenceSession(self, path, options, providers, provider_options):  # onnxruntime's name
        self.sessions.append({"providers": providers, "options": provider_options})
        session = self.real.InferenceSession(path, options, providers=[CPU])
        return types.SimpleNamespace(get_providers=lambda: [p for p in providers if p in self.starts],
                                     get_inputs=session.get_inputs, run=session.run)


def gpu_context(tmp_path: Path, monkeypatch, **options) -> BuildContext:
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(name="Orin", major=8,
                                                                                             minor=7))
    return BuildContext(DEFAULT_WEIGHTS, torch.device("cuda"), InferenceOptions(engine_cache_dir=tmp_path, **options))


@needs_ort
def test_a_cuda_build_asks_for_tensorrt_with_its_cache_in_ours_and_says_which_provider_runs(tmp_path, monkeypatch):
    fake = GpuOnnxRuntime(starts=GPU_BUILD)
    monkeypatch.setattr(onnx_runtime, "import_onnxruntime", lambda: fake)
    model = load_model(DEFAULT_WEIGHTS)[0]
    backend, status = OnnxRuntimeBackend.from_model(model, gpu_context(tmp_path, monkeypatch, enable_fp16=True))
    asked = fake.sessions[-1]
    assert asked["providers"] == [TENSORRT, CUDA, CPU] and asked["options"][0]["trt_fp16_enable"] is True
    folder = Path(asked["options"][0]["trt_engine_cache_path"])
    assert folder.parent == tmp_path and folder.name.startswith("onnxruntime_tensorrt_") and folder.is_dir()
    assert "ONNX Runtime runs on TensorrtExecutionProvider" in status and backend.provider == TENSORRT
    assert backend.fp16 and backend.profile == ShapeProfile.around((512, 640)) and backend.warmup_shape == (512, 640)
    onnx_record = json.loads(next(tmp_path.glob("onnx_*.onnx.json")).read_text())["key"]
    assert onnx_record["precision"] == "fp16" and onnx_record["onnxruntime"] and onnx_record["code"]
    # A frame smaller than the engine's profile is resized into it and back; the output keeps the frame's size.
    fused = backend.run_numpy(np.zeros((16, 20), np.float32), np.ones((16, 20), np.float32))
    assert fused.shape == (16, 20)


@needs_ort
def test_when_tensorrt_does_not_start_the_status_says_cuda_runs_and_why(tmp_path, monkeypatch):
    fake = GpuOnnxRuntime(starts=[CUDA, CPU])
    monkeypatch.setattr(onnx_runtime, "import_onnxruntime", lambda: fake)
    backend, status = OnnxRuntimeBackend.from_model(load_model(DEFAULT_WEIGHTS)[0], gpu_context(tmp_path, monkeypatch))
    assert backend.provider == CUDA and backend.profile is None  # CUDA takes every size
    assert "runs on CUDAExecutionProvider" in status and "could not start TensorrtExecutionProvider" in status


def test_the_option_names_are_onnx_runtimes():
    """The names as onnxruntime-gpu 1.31.1's TensorRT provider library spells them (read from the wheel)."""
    options = onnx_providers.tensorrt_options(0, True, Path("/c"), PROFILE, ("y", "ir"))
    assert set(options) == {"device_id", "trt_fp16_enable", "trt_engine_cache_enable", "trt_engine_cache_path",
                            "trt_timing_cache_enable", "trt_timing_cache_path", "trt_profile_min_shapes",
                            "trt_profile_opt_shapes", "trt_profile_max_shapes"}
