"""``backend: auto`` when a backend that is available fails to build or load: the next one runs, and the reason is in
the decisions, the log and (in the node) /diagnostics. Explicit backends never fall back."""

from __future__ import annotations

import logging

import pytest
import torch

from sage_core.backends import BACKENDS, OnnxRuntimeBackend, TorchBackend, load_backend
from sage_core.backends.base import BuildContext
from sage_core.backends.loading import _choose_auto
from sage_core.checkpoint import load_model
from sage_core.errors import BackendError
from sage_core.fuser import DEFAULT_WEIGHTS, Fuser
from sage_core.options import InferenceOptions

CUDA = torch.device("cuda")


def refuse(reason: str):
    def from_model(cls, model, context):
        raise BackendError(reason)
    return classmethod(from_model)


@pytest.fixture
def on_a_gpu(monkeypatch, tmp_path):
    """Every backend available on a pretend CUDA device; torch's backend built on the CPU instead."""
    for cls in BACKENDS.values():
        monkeypatch.setattr(cls, "available", classmethod(lambda c, device: (True, "")))
    def torch_on_the_cpu(cls, model, context):
        return TorchBackend(model, torch.device("cpu")), ""

    monkeypatch.setattr(TorchBackend, "from_model", classmethod(torch_on_the_cpu))
    return BuildContext(DEFAULT_WEIGHTS, CUDA, InferenceOptions(engine_cache_dir=tmp_path))


def test_a_refused_engine_falls_back_to_the_next_backend_with_the_reason(on_a_gpu, monkeypatch, caplog):
    monkeypatch.setattr(BACKENDS["tensorrt"], "from_model",
                        refuse("refused the fp16 TensorRT engine: 3.10 grey levels from eager"))
    monkeypatch.setattr(OnnxRuntimeBackend, "from_model", refuse("onnxruntime-gpu: libcudnn.so.9 not found"))
    with caplog.at_level(logging.WARNING, logger="sage_core.backends"):
        backend, decisions, fallback = _choose_auto(load_model(DEFAULT_WEIGHTS)[0], on_a_gpu)
    assert backend.name == "torch"
    assert fallback == ("tensorrt failed on cuda: BackendError: refused the fp16 TensorRT engine: 3.10 grey levels "
                        "from eager; onnxruntime failed on cuda: BackendError: onnxruntime-gpu: libcudnn.so.9 not "
                        "found")
    assert decisions[-1] == "chose torch: the fastest kind available on cuda that built"
    assert "tensorrt failed on cuda" in caplog.text and "trying the next backend" in caplog.text


def test_when_every_backend_fails_the_error_lists_every_reason(on_a_gpu, monkeypatch):
    for name in BACKENDS:
        monkeypatch.setattr(BACKENDS[name], "from_model", refuse(f"{name} broke"))
    with pytest.raises(BackendError, match="no backend could be built on cuda: tensorrt failed.*onnxruntime.*torch"):
        _choose_auto(load_model(DEFAULT_WEIGHTS)[0], on_a_gpu)


def test_on_a_cpu_a_failed_build_leaves_the_other_and_the_fuser_keeps_the_reason(monkeypatch, tmp_path):
    if not OnnxRuntimeBackend.available(torch.device("cpu"))[0]:
        pytest.skip("onnxruntime not installed")
    monkeypatch.setattr(OnnxRuntimeBackend, "from_model", refuse("cannot write the ONNX file"))
    fuser = Fuser.from_options(InferenceOptions(device="cpu", engine_cache_dir=tmp_path))
    assert fuser.backend.name == "torch"
    assert fuser.fallback == "onnxruntime failed on cpu: BackendError: cannot write the ONNX file"


def test_an_explicit_backend_does_not_fall_back(monkeypatch, tmp_path):
    monkeypatch.setattr(OnnxRuntimeBackend, "available", classmethod(lambda c, device: (True, "")))
    monkeypatch.setattr(OnnxRuntimeBackend, "from_model", refuse("cannot write the ONNX file"))
    with pytest.raises(BackendError, match="cannot write the ONNX file"):
        load_backend(InferenceOptions(device="cpu", backend="onnxruntime", engine_cache_dir=tmp_path))


@pytest.mark.dds
def test_the_node_puts_the_fallback_in_diagnostics(monkeypatch, tmp_path):
    pytest.importorskip("rclpy", reason="rclpy not installed")
    from tests.ros_harness import Loopback

    monkeypatch.setattr(OnnxRuntimeBackend, "available", classmethod(lambda c, device: (True, "")))
    monkeypatch.setattr(OnnxRuntimeBackend, "from_model", refuse("engine build ran out of memory"))
    harness = Loopback(backend="auto", device="cpu", engine_cache_dir=str(tmp_path), diagnostics_period=0.1)
    try:
        assert harness.node.fuser.backend.name == "torch"
        expected = "onnxruntime failed on cpu: BackendError: engine build ran out of memory"
        assert harness.wait_for(lambda: harness.diagnostic_values().get("backend fallback") == expected, timeout=5)
    finally:
        harness.close()
