"""benchmarks/bench_gpu.py --acceptance, tried on the CPU (--device cpu): every row is there, a backend the machine
lacks says why, one that fails to build fails the run. Its numbers mean something on a GPU only."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import REPO

from sage_core.backends import OnnxRuntimeBackend
from sage_core.errors import BackendError


def bench_gpu(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_gpu", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["bench_gpu.py", "--acceptance", "--device", "cpu", "--sizes", "64x80",
                                      "--repeats", "1", *args])
    return bench_gpu(monkeypatch).main()


def test_every_backend_has_a_row_and_a_missing_one_says_why(monkeypatch, capsys):
    assert run(monkeypatch) == 0
    out = capsys.readouterr().out
    for name in ("torch fp32", "torch fp16", "TensorRT fp32", "TensorRT fp16", "ONNX Runtime CUDA fp32",
                 "ONNX Runtime auto fp32", "ONNX Runtime auto fp16", "node frame path (auto)"):
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert "not run: TensorRT needs a CUDA device" in out and out.splitlines()[-1].startswith("passed")


def test_a_backend_that_fails_to_build_fails_the_acceptance(monkeypatch, capsys):
    if not OnnxRuntimeBackend.available(__import__("torch").device("cpu"))[0]:
        pytest.skip("onnxruntime not installed")

    def broken(cls, model, context):
        raise BackendError("TensorRT provider: out of memory")

    monkeypatch.setattr(OnnxRuntimeBackend, "from_model", classmethod(broken))
    assert run(monkeypatch) == 1
    out = capsys.readouterr().out
    assert "FAILED: BackendError: TensorRT provider: out of memory" in out
    assert out.splitlines()[-1].startswith("FAILED: 2 row(s) failed")
