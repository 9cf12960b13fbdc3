"""The TensorRT backend's own logic, on the CPU: the traced program (distinct inputs, dynamic height and width, the
precision in the graph), what is handed to torch-tensorrt, the acceptance of an engine, the cache key, frames
outside the profile. torch-tensorrt itself needs a GPU: here a stand-in whose "engine" is the program torch.export
made (what torch-tensorrt would compile), saved and loaded with torch.export as torch_tensorrt.save/load do."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from sage_core.backends import tensorrt_engine, tensorrt_trace
from sage_core.backends.base import BuildContext, prepare_for_inference
from sage_core.backends.engine_profile import ShapeProfile
from sage_core.backends.fingerprint import code_digest, device_identity
from sage_core.backends.tensorrt_engine import TensorRTBackend, accept_engine, cache_parts
from sage_core.checkpoint import load_model
from sage_core.errors import BackendError, ConfigError
from sage_core.fuser import DEFAULT_WEIGHTS, Fuser
from sage_core.models import AffineFuse, SageStudent
from sage_core.options import InferenceOptions

CPU = torch.device("cpu")
PROFILE = ShapeProfile((32, 32), (64, 80), (96, 128))  # small: every check runs in well under a second


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_WEIGHTS)[0]


class FakeTorchTensorRT:
    """torch_tensorrt's calls we make, recorded; compile returns the ExportedProgram's module (``offset`` added
    to its output to play a wrong engine)."""

    __version__ = "2.14.0"

    def __init__(self, offset: float = 0.0) -> None:
        self.calls: dict[str, dict] = {}
        self.offset = offset
        self.dynamo = types.SimpleNamespace(compile=self._compile)

    class Input:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

    def _compile(self, exported_program, inputs=None, *, arg_inputs=None, device=None, min_block_size=5,
                 require_full_compilation=False, truncate_double=False, cache_built_engines=False,
                 reuse_cached_engines=False, enable_autocast=False, **kwargs):  # 2.14's signature, abridged
        self.calls["compile"] = {"program": exported_program, "arg_inputs": arg_inputs, "device": device,
                                 "min_block_size": min_block_size, "kwargs": kwargs}
        module = exported_program.module()
        if not self.offset:
            return module
        offset = self.offset

        class Off(torch.nn.Module):
            def forward(self, y, ir):
                return module(y, ir) + offset
        return Off()

    def save(self, module, path, *, output_format, arg_inputs, dynamic_shapes):
        self.calls["save"] = {"arg_inputs": arg_inputs, "dynamic_shapes": dynamic_shapes, "format": output_format}
        torch.export.save(torch.export.export(module, tuple(arg_inputs), dynamic_shapes=dynamic_shapes,
                                              strict=False), path)

    def load(self, path):
        return torch.export.load(path)


def context(tmp_path: Path, **options) -> BuildContext:
    return BuildContext(DEFAULT_WEIGHTS, CPU, InferenceOptions(engine_cache_dir=tmp_path, engine_shape=(64, 80),
                                                               **options))


# ----- what is traced ----------------------------------------------------------------------------

def test_the_example_inputs_are_two_different_tensors():
    y, ir = tensorrt_trace.example_inputs(PROFILE, torch.float32, CPU)
    assert y is not ir and y.data_ptr() != ir.data_ptr() and not torch.equal(y, ir)
    assert tuple(y.shape) == tuple(ir.shape) == (1, 1, 64, 80)


def test_height_and_width_are_dynamic_over_the_profile_with_one_spec_for_both_inputs(model):
    y_spec, ir_spec = tensorrt_trace.dynamic_shapes(PROFILE)
    assert y_spec[2] is ir_spec[2] and y_spec[3] is ir_spec[3] and set(y_spec) == {2, 3}
    assert tensorrt_trace.dynamic_shapes(ShapeProfile.fixed((64, 80))) is None
    program, _ = tensorrt_trace.trace(prepare_for_inference(model), PROFILE)
    shapes = {n.name: n.meta["val"].shape for n in program.graph.nodes if n.op == "placeholder"}
    assert str(shapes["y"]) == str(shapes["ir"]) and isinstance(shapes["y"][2], torch.SymInt)
    bounds = {(int(r.lower), int(r.upper)) for r in program.range_constraints.values()}
    assert bounds == {(32, 96), (32, 128)}


def test_the_trace_refuses_one_tensor_passed_as_both_inputs(model, monkeypatch):
    x = torch.rand(1, 1, 64, 80)
    monkeypatch.setattr(tensorrt_trace, "example_inputs", lambda profile, dtype, device, seed=0: (x, x))
    with pytest.raises(BackendError, match="never reads the pixels of 'y'"):
        tensorrt_trace.trace(prepare_for_inference(model), PROFILE)


def test_the_trace_refuses_a_graph_specialised_to_one_size(model, monkeypatch):
    monkeypatch.setattr(tensorrt_trace, "dynamic_shapes", lambda profile: None)  # the old static build
    with pytest.raises(BackendError, match="specialised the height to 64"):
        tensorrt_trace.trace(prepare_for_inference(model), PROFILE)


def test_fp16_is_in_the_graph_every_convolution_and_a_float_graph_is_refused_as_fp16(model):
    half, examples = tensorrt_trace.trace(prepare_for_inference(model).half(), PROFILE, torch.half)
    convolutions = [n for n in half.graph.nodes if str(n.target) in tensorrt_trace.CONVOLUTIONS]
    assert convolutions and all(n.meta["val"].dtype == torch.half for n in convolutions)
    assert all(t.dtype == torch.half for t in examples)
    program, _ = tensorrt_trace.trace(prepare_for_inference(model), PROFILE)
    with pytest.raises(BackendError, match="do not compute in torch.float16"):
        tensorrt_trace.check_program(program, PROFILE, torch.half)


def test_the_inputs_handed_to_torch_tensorrt_carry_the_profile_and_the_distinct_examples():
    examples = tensorrt_trace.example_inputs(PROFILE, torch.half, CPU)
    inputs = tensorrt_trace.tensorrt_inputs(FakeTorchTensorRT, PROFILE, examples)
    assert [i.kwargs["name"] for i in inputs] == ["y", "ir"]
    assert [i.kwargs["torch_tensor"] for i in inputs] == list(examples)
    assert inputs[0].kwargs["min_shape"] == (1, 1, 32, 32) and inputs[0].kwargs["opt_shape"] == (1, 1, 64, 80)
    assert inputs[1].kwargs["max_shape"] == (1, 1, 96, 128) and inputs[1].kwargs["dtype"] == torch.half
    fixed = tensorrt_trace.tensorrt_inputs(FakeTorchTensorRT, ShapeProfile.fixed((64, 80)), examples)
    assert fixed[0].kwargs["shape"] == (1, 1, 64, 80) and "min_shape" not in fixed[0].kwargs


def test_enabled_precisions_goes_only_to_a_compiler_that_still_takes_it():
    def compile_214(exported_program, *, arg_inputs=None, min_block_size=5, truncate_double=False, **kwargs):
        pass

    def compile_old(exported_program, *, arg_inputs=None, enabled_precisions=None, min_block_size=5):
        pass

    assert tensorrt_trace.compile_kwargs(compile_214, fp16=True) == {"min_block_size": 1, "truncate_double": True}
    old = tensorrt_trace.compile_kwargs(compile_old, fp16=True)
    assert old == {"min_block_size": 1, "enabled_precisions": {torch.half}}
    assert tensorrt_trace.compile_kwargs(compile_old, fp16=False)["enabled_precisions"] == {torch.float}


# ----- build, acceptance, cache ------------------------------------------------------------------

def test_a_build_compiles_the_checked_program_saves_it_dynamic_and_runs_y_and_ir_apart(model, tmp_path, monkeypatch):
    fake = FakeTorchTensorRT()
    monkeypatch.setattr(tensorrt_engine, "import_torch_tensorrt", lambda: fake)
    backend, status = TensorRTBackend.from_model(model, context(tmp_path))
    assert status.startswith("built tensorrt") and "within 0.00 grey levels" in status
    compiled = fake.calls["compile"]
    assert isinstance(compiled["program"], torch.export.ExportedProgram) and compiled["min_block_size"] == 1
    assert "enabled_precisions" not in compiled["kwargs"]  # 2.14 has none: it would be swallowed
    saved = fake.calls["save"]
    assert saved["format"] == "exported_program" and saved["dynamic_shapes"] is not None
    assert not torch.equal(*saved["arg_inputs"])
    rng = np.random.default_rng(0)
    y, ir = (rng.random((40, 56), dtype=np.float32) for _ in range(2))
    eager = Fuser(model, device="cpu").backend
    assert np.abs(backend.run_numpy(y, ir) - eager.run_numpy(y, ir)).max() < 1e-5  # another size, y != ir
    record = json.loads(next(tmp_path.glob("tensorrt_*.ep.json")).read_text())
    assert record["key"]["profile"] == {"min": [32, 32], "opt": [64, 80], "max": [1200, 1920]}
    _, again = TensorRTBackend.from_model(model, context(tmp_path))
    assert again.startswith("loaded cached tensorrt")


def test_an_engine_off_by_more_than_two_grey_levels_is_refused_and_not_cached(model, tmp_path, monkeypatch):
    monkeypatch.setattr(tensorrt_engine, "import_torch_tensorrt", lambda: FakeTorchTensorRT(offset=3 / 255))
    refused = r"refused the fp32 TensorRT engine.*more than 2 grey levels.*opt 80x64 3\.00"
    with pytest.raises(BackendError, match=refused):
        TensorRTBackend.from_model(model, context(tmp_path))
    assert not list(tmp_path.glob("*.ep")) and not list(tmp_path.glob("*.json"))


def test_an_engine_asked_for_in_fp16_that_returns_fp32_is_refused(model):
    module = prepare_for_inference(model)

    def engine(y, ir):
        return module(y.float(), ir.float())

    with pytest.raises(BackendError, match="returns torch.float32: it was not built in that precision"):
        accept_engine(engine, model, CPU, True, PROFILE)
    assert "within 0.00 grey levels" in accept_engine(module, model, CPU, False, PROFILE)


def test_frames_outside_the_profile_are_resized_into_it_and_back(model, caplog):
    module = prepare_for_inference(model)
    seen = []

    def engine(y, ir):
        seen.append(tuple(y.shape[-2:]))
        return module(y, ir)

    backend = TensorRTBackend(engine, CPU, False, PROFILE, "test")
    assert backend.warmup_shape == (64, 80)
    for size, expected in [((48, 64), (48, 64)), ((16, 16), (32, 32)), ((192, 256), (96, 128)), ((20, 300), (32, 128))]:
        out = backend.run_numpy(np.zeros(size, np.float32), np.ones(size, np.float32))
        assert out.shape == size and seen[-1] == expected
    assert caplog.text.count("outside the TensorRT engine's profile") == 1  # logged once


def test_the_cache_key_names_everything_that_invalidates_an_engine(model, tmp_path, monkeypatch):
    fake = FakeTorchTensorRT()
    gpu = types.SimpleNamespace(name="NVIDIA H100", major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: gpu)
    monkeypatch.setattr("sage_core.backends.fingerprint.driver_version", lambda: "Kernel Module 570.1")
    cuda = BuildContext(DEFAULT_WEIGHTS, torch.device("cuda"), InferenceOptions(engine_cache_dir=tmp_path,
                                                                                 enable_fp16=True))
    parts = cache_parts(fake, model, cuda, PROFILE)
    assert {"model_sha256", "code", "sage_ros", "torch", "torch_tensorrt", "tensorrt", "gpu", "compute_capability",
            "cuda", "driver", "precision", "profile", "compile"} <= set(parts)
    assert (parts["gpu"], parts["compute_capability"], parts["driver"]) == ("NVIDIA H100", "9.0", "Kernel Module 570.1")
    assert parts["precision"] == "fp16" and parts["torch_tensorrt"] == "2.14.0" and parts["compile"]["min_block_size"]
    fake.__version__ = "2.14.1"
    assert cache_parts(fake, model, cuda, PROFILE)["torch_tensorrt"] == "2.14.1"
    assert cache_parts(fake, model, cuda, ShapeProfile.fixed((64, 80)))["profile"] != parts["profile"]
    assert cache_parts(fake, SageStudent(), cuda, PROFILE)["code"] != parts["code"]


def test_an_edited_model_class_changes_the_code_digest(tmp_path, monkeypatch):
    source = "from sage_core.models import AffineFuse\n\nclass Edited(AffineFuse):\n    scale_bias = {}\n"
    digests = []
    for version in (1, 2):
        (tmp_path / f"edited_model_{version}.py").write_text(source.format(version))
        monkeypatch.syspath_prepend(str(tmp_path))
        module = __import__(f"edited_model_{version}")
        digests.append(code_digest(module.Edited))
        del sys.modules[module.__name__]
    assert digests[0] != digests[1] and code_digest(AffineFuse) not in digests
    assert device_identity(CPU) == {"cpu": "cpu"}


def test_an_exported_engine_loads_with_its_profile_and_precision(model, tmp_path, monkeypatch):
    fake = FakeTorchTensorRT()
    monkeypatch.setattr(tensorrt_engine, "import_torch_tensorrt", lambda: fake)
    monkeypatch.setattr(TensorRTBackend, "available", classmethod(lambda cls, device: (True, "")))
    path = tmp_path / "model.ep"
    extra = TensorRTBackend.export(model, path, "fp32", None, CPU)
    assert extra["profile"]["opt"] == [512, 640] and "within" in extra["engine_check"]
    backend = TensorRTBackend.from_file(path, {"format": "tensorrt", "precision": "fp32", **extra}, context(tmp_path))
    assert backend.profile == ShapeProfile.from_json(extra["profile"]) and not backend.fp16
    with pytest.raises(BackendError, match="names no engine profile"):
        TensorRTBackend.from_file(path, {"format": "tensorrt", "shape": "dynamic"}, context(tmp_path))


def test_the_profile_fits_every_size_and_refuses_a_bad_range():
    profile = ShapeProfile.around((512, 640))
    assert profile.min == (32, 32) and profile.max == (1200, 1920) and profile.dynamic
    assert profile.fit(480, 640) == (480, 640) and profile.fit(2160, 3840) == (1080, 1920)
    assert profile.fit(10, 10) == (32, 32) and ShapeProfile.around((2000, 640)).max == (2000, 1920)
    assert ShapeProfile.from_json(profile.to_json()) == profile
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        ShapeProfile((64, 64), (32, 32), (128, 128))
    with pytest.raises(ConfigError, match="expected"):
        ShapeProfile.from_json({"min": [1]})


def test_fuser_warms_up_at_the_shape_its_backend_is_tuned_for(model):
    module = prepare_for_inference(model)
    seen = []

    def engine(y, ir):
        seen.append(tuple(y.shape[-2:]))
        return module(y, ir)

    Fuser(TensorRTBackend(engine, CPU, False, PROFILE, "test")).warmup()
    assert seen == [(64, 80)]


def test_with_named_dims_an_older_torch_gets_runtime_assertions_instead_of_a_constraint_violation(model, monkeypatch):
    """Without bounded Dim.DYNAMIC a named Dim is used; AffineFuse's ceil-mode pooling guard then needs deferred
    runtime assertions (here on torch 2.14; older torch untested)."""
    monkeypatch.setattr(tensorrt_trace, "_axis", lambda name, low, high: torch.export.Dim(name, min=low, max=high))
    program, _ = tensorrt_trace.trace(prepare_for_inference(model), PROFILE)
    assert any("_assert_scalar" in str(n.target) for n in program.graph.nodes)
    eager = prepare_for_inference(model)
    y, ir = torch.rand(1, 1, 37, 51), torch.rand(1, 1, 37, 51)
    assert torch.allclose(program.module()(y, ir), eager(y, ir), atol=1e-6)
