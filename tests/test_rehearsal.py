"""``training/export.py --rehearse tensorrt|onnx``: the GPU builds' programs, run on the CPU on the default model
(this is CI's rehearsal), and proof that it fails on the two ways the TensorRT build used to be wrong."""

from __future__ import annotations

import pytest
import torch

from sage_core.backends import available, tensorrt_trace
from tests.helpers import training_main

needs_ort = pytest.mark.skipif(not available("onnxruntime", torch.device("cpu"))[0], reason="onnxruntime not installed")


def rows(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines() if line.split()[:1] in (["min"], ["opt"], ["max"])}


@pytest.mark.parametrize("target", ["tensorrt", pytest.param("onnx", marks=needs_ort)])
def test_the_default_model_rehearses_within_1e5_at_min_opt_and_max(target, capsys):
    assert training_main("export", ["--rehearse", target]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    assert set(table) == {"min", "opt", "max"} and all(line.endswith("ok") for line in table.values())
    assert "32x32" in table["min"] and "640x512" in table["opt"] and "1920x1200" in table["max"]
    assert "passed: every shape within 1e-05" in out
    if target == "tensorrt":
        assert "5 of 5 convolutions in float16" in out  # the fp16 build's graph, checked


def test_it_fails_a_build_that_passes_one_tensor_as_both_inputs(monkeypatch, capsys):
    """Problem 1: ``[torch.rand(...)] * 2`` as example inputs traced a graph fusing the thermal with itself."""
    def one_tensor_twice(profile, dtype, device, seed=0):
        x = torch.rand(1, 1, *profile.opt, dtype=dtype, device=device)
        return x, x

    monkeypatch.setattr(tensorrt_trace, "example_inputs", one_tensor_twice)
    assert training_main("export", ["--rehearse", "tensorrt"]) == 1
    assert "FAILED: the traced graph never reads the pixels of 'y', only its size" in capsys.readouterr().out

    monkeypatch.setattr(tensorrt_trace, "check_program", lambda program, profile, dtype: None)  # unchecked build
    assert training_main("export", ["--rehearse", "tensorrt"]) == 1
    out = capsys.readouterr().out
    table = rows(out)
    assert all("FAILED: above 1e-05" in line for line in table.values()) and "FAILED:" in out.splitlines()[-1]
    assert float(table["opt"].split()[2]) > 0.01  # far off, not rounding
    assert "with ONE TENSOR as both y and ir" in out


def test_it_fails_an_engine_that_takes_one_size_only(monkeypatch, capsys):
    """Problem 2: a static trace at one shape; refused when checked, and refused at run time at the other sizes."""
    monkeypatch.setattr(tensorrt_trace, "dynamic_shapes", lambda profile: None)
    assert training_main("export", ["--rehearse", "tensorrt"]) == 1
    assert "FAILED: the trace specialised the height to 512" in capsys.readouterr().out

    monkeypatch.setattr(tensorrt_trace, "check_program", lambda program, profile, dtype: None)  # unchecked build
    assert training_main("export", ["--rehearse", "tensorrt"]) == 1
    out = capsys.readouterr().out
    table = rows(out)
    assert table["opt"].endswith("ok") and "height and width fixed at 640x512" in out
    assert "FAILED: " in table["min"] and "FAILED: " in table["max"] and "-" in table["max"].split()[2]
    assert out.splitlines()[-1] == "FAILED: min, max refused"


def test_export_without_rehearse_still_needs_format_and_out(capsys):
    with pytest.raises(SystemExit) as exit_info:
        training_main("export", ["--format", "onnx"])
    assert exit_info.value.code == 2
    assert "--model-file-path, --out (or --rehearse)" in capsys.readouterr().err
