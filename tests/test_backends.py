"""Backends, export and the engine cache: same fused image from every backend here, sidecars, cache logic."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from sage_core.backends import (
    BACKENDS,
    OnnxRuntimeBackend,
    TensorRTBackend,
    auto_candidates,
    available,
    fold_batchnorm,
    load_backend,
)
from sage_core.backends.cache import ArtifactCache
from sage_core.backends.onnx_runtime import ONNX_OPSET
from sage_core.checkpoint import file_sha256
from sage_core.errors import BackendError
from sage_core.fuser import DEFAULT_WEIGHTS, Fuser
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.models import AffineFuse, CpuSplit, SageStudent
from sage_core.options import InferenceOptions
from sage_core.synthetic import SyntheticScene
from tests.conftest import DATASETS, OFFICIAL_CHECKPOINT
from tests.helpers import training_main

CPU = torch.device("cpu")
HAS_ORT = available("onnxruntime", CPU)[0]
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed (pip install -e .[export])")


def load(path, backend: str = "auto", device: str = "cpu", **options):
    return load_backend(InferenceOptions(model_file_path=path, backend=backend, device=device, **options))


def real_pair() -> tuple[np.ndarray, np.ndarray]:
    if (DATASETS / "m3fd_sage6").exists():
        return read_pair(dataset_pairs(DATASETS / "m3fd_sage6")[0])
    frame = SyntheticScene(640, 512).frame(1.0)
    return frame.thermal_mono8, frame.visible


def model_files() -> list[Path]:
    return [DEFAULT_WEIGHTS] + ([OFFICIAL_CHECKPOINT] if OFFICIAL_CHECKPOINT.exists() else [])


@pytest.mark.parametrize("weights", model_files(), ids=lambda p: p.stem)
@pytest.mark.parametrize("backend", ["torchscript", pytest.param("onnxruntime", marks=needs_ort)])
def test_every_backend_matches_eager_pytorch_within_one_grey_level(weights, backend, tmp_path):
    ir, vis = real_pair()
    eager = Fuser.from_weights(weights, device="cpu", backend="torch").fuse(ir, vis)
    other = Fuser.from_weights(weights, device="cpu", backend=backend, engine_cache_dir=tmp_path)
    assert other.backend.name == backend
    assert np.abs(other.fuse(ir, vis).astype(int) - eager.astype(int)).max() <= 1


def test_batchnorm_folding_keeps_the_function():
    model = SageStudent().eval()
    for module in model.modules():  # non-trivial statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    x = torch.rand(1, 1, 48, 64), torch.rand(1, 1, 48, 64)
    import copy

    folded = fold_batchnorm(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(model(*x), folded(*x), atol=1e-5)


def test_colour_pipeline_on_the_model_device_matches_within_one_grey_level():
    """What runs on a GPU, checked here on the CPU device (same torch code)."""
    ir, vis = real_pair()
    fuser = Fuser.from_weights(None, device="cpu", backend="torch")
    reference = fuser.fuse(ir, vis)
    fuser.colour_on_device = True
    assert np.abs(fuser.fuse(ir, vis).astype(int) - reference.astype(int)).max() <= 1
    frame = SyntheticScene(160, 128).frame(0.5)
    fuser.colour_on_device = False
    reference16 = fuser.fuse(frame.thermal_mono16, frame.visible)
    fuser.colour_on_device = True
    assert np.abs(fuser.fuse(frame.thermal_mono16, frame.visible).astype(int) - reference16.astype(int)).max() <= 1


# ----- export -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, suffix", [("torchscript", ".ts"), pytest.param("onnx", ".onnx", marks=needs_ort)])
def test_export_writes_a_validated_artefact_and_a_correct_sidecar(fmt, suffix, tmp_path, capsys):
    out = tmp_path / f"model{suffix}"
    assert training_main("export", ["--weights", str(DEFAULT_WEIGHTS), "--format", fmt, "--out", str(out)]) == 0
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["format"] == fmt and meta["precision"] == "fp32" and meta["shape"] == "dynamic"
    assert meta["source_sha256"] == file_sha256(DEFAULT_WEIGHTS) and meta["arch"] == "affine_fuse"
    assert meta["library_versions"]["torch"] == torch.__version__
    assert meta["validation"]["max_abs_diff_uint8"] <= 1
    if fmt == "onnx":
        assert meta["opset"] == ONNX_OPSET
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, out.name + ".json"])  # no leftovers
    assert "grey level" in capsys.readouterr().out
    # The artefact loads by itself, through its natural backend, at any size (dynamic axes).
    fuser = Fuser.from_weights(out, device="cpu")
    assert fuser.backend.name == {"torchscript": "torchscript", "onnx": "onnxruntime"}[fmt]
    frame = SyntheticScene(200, 136).frame(0.3)
    eager = Fuser.from_weights(DEFAULT_WEIGHTS, device="cpu", backend="torch")
    assert np.abs(fuser.fuse(frame.thermal_mono8, frame.visible).astype(int)
                  - eager.fuse(frame.thermal_mono8, frame.visible).astype(int)).max() <= 1


@needs_ort
def test_fixed_shape_onnx_export(tmp_path):
    out = tmp_path / "fixed.onnx"
    assert training_main("export", ["--weights", str(DEFAULT_WEIGHTS), "--format", "onnx", "--out", str(out),
                                    "--shape", "96x128"]) == 0
    assert json.loads((tmp_path / "fixed.onnx.json").read_text())["shape"] == [96, 128]
    # Frames of another size are resized to the export's shape and back, not refused by ONNX Runtime.
    fuser = Fuser.from_weights(out, device="cpu")
    assert fuser.backend.fixed_shape == (96, 128)
    frame = SyntheticScene(200, 160).frame(0.5)
    eager = Fuser.from_weights(DEFAULT_WEIGHTS, device="cpu", backend="torch").fuse(frame.thermal_mono8, frame.visible)
    fused = fuser.fuse(frame.thermal_mono8, frame.visible)
    assert fused.shape == eager.shape and np.abs(fused.astype(int) - eager.astype(int)).mean() < 8  # detail lost


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--shape", "12x12"], "at least 16 pixels"),
    (["--format", "onnx", "--shape", "big"], "expected HEIGHTxWIDTH"),
    (["--format", "tensorrt"], "cannot export to TensorRT"),
    (["--format", "torchscript", "--precision", "fp16"], "TorchScript exports are fp32"),
])
def test_export_bad_input(args, message, tmp_path, capsys):
    if "tensorrt" in args and available("tensorrt", CPU)[0]:
        pytest.skip("TensorRT is available here")
    code = training_main("export", ["--weights", str(DEFAULT_WEIGHTS), "--out", str(tmp_path / "m.x")] + args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_corrupt_or_incomplete_exports_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    with pytest.raises(BackendError, match="without its sidecar"):
        load(bad)
    (tmp_path / "bad.onnx.json").write_text(json.dumps({"format": "onnx"}))
    if HAS_ORT:
        with pytest.raises(BackendError, match="ONNX Runtime cannot load it"):
            load(bad)
    with pytest.raises(BackendError, match="backend torchscript cannot run it"):
        load(bad, backend="torchscript")
    (tmp_path / "bad.onnx.json").write_text("{broken")
    with pytest.raises(BackendError, match="not valid JSON"):
        load(bad)
    (tmp_path / "bad.onnx.json").write_text(json.dumps({"format": "caffe"}))
    with pytest.raises(BackendError, match="unknown format 'caffe'"):
        load(bad)
    for not_an_object in (["onnx"], "onnx", 17):
        (tmp_path / "bad.onnx.json").write_text(json.dumps(not_an_object))
        with pytest.raises(BackendError, match="expected a JSON object"):
            load(bad)
    ts = tmp_path / "bad.ts"
    ts.write_bytes(b"junk")
    (tmp_path / "bad.ts.json").write_text(json.dumps({"format": "torchscript"}))
    with pytest.raises(BackendError, match="not a loadable TorchScript file"):
        load(ts)
    with pytest.raises(BackendError, match="backend 'cuda-magic'"):
        load(DEFAULT_WEIGHTS, backend="cuda-magic")


# ----- the artefact cache (no TensorRT needed) -----------------------------------------------------

PARTS = {"kind": "tensorrt", "model_sha256": "ab" * 32, "tensorrt": "10.3", "gpu": "Orin", "compute_capability": "8.7",
         "precision": "fp16", "shape": [512, 640]}


def test_cache_key_changes_with_every_part():
    base = ArtifactCache.key(PARTS)
    for name, value in [("model_sha256", "cd" * 32), ("tensorrt", "10.4"), ("gpu", "H100"),
                        ("compute_capability", "9.0"), ("precision", "fp32"), ("shape", [480, 640])]:
        assert ArtifactCache.key({**PARTS, name: value}) != base, name
    assert ArtifactCache.key(dict(reversed(list(PARTS.items())))) == base  # order does not matter


def test_cache_builds_once_then_loads_and_rebuilds_what_fails_to_load(tmp_path, caplog):
    cache = ArtifactCache(tmp_path)
    builds = []

    def build(path: Path) -> None:
        builds.append(path)
        path.write_text("engine v1")

    def load(path: Path) -> str:
        text = path.read_text()
        if text != "engine v1":
            raise RuntimeError("serialization version mismatch")
        return text

    engine, status = cache.get_or_build(PARTS, ".ep", build, load)
    assert engine == "engine v1" and status.startswith("built tensorrt") and len(builds) == 1
    assert "no cached artefact" in status
    engine, status = cache.get_or_build(PARTS, ".ep", build, load)
    assert status.startswith("loaded cached tensorrt") and len(builds) == 1
    record = json.loads(cache.path(PARTS, ".ep").with_suffix(".ep.json").read_text())
    assert record["key"] == json.loads(json.dumps(PARTS))
    assert record["artefact_sha256"] == file_sha256(cache.path(PARTS, ".ep"))
    cache.path(PARTS, ".ep").write_text("corrupted by a driver update")
    with caplog.at_level(logging.WARNING, logger="sage_core.backends"):
        engine, status = cache.get_or_build(PARTS, ".ep", build, load)
    assert engine == "engine v1" and len(builds) == 2 and "digest mismatch" in caplog.text
    engine, status = cache.get_or_build(PARTS, ".ep", build, load, force=True)
    assert len(builds) == 3 and "rebuild forced" in status
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@needs_ort
def test_a_different_valid_onnx_at_a_cache_key_is_rebuilt_not_loaded(tmp_path, caplog):
    first = load(DEFAULT_WEIGHTS, backend="onnxruntime", engine_cache_dir=tmp_path)
    (cached,) = tmp_path.glob("onnx_*.onnx")
    from sage_core.backends.onnx_runtime import export_onnx

    export_onnx(SageStudent(), cached)  # a valid ONNX file of another model, put where ours was
    with caplog.at_level(logging.WARNING, logger="sage_core.backends"):
        again = load(DEFAULT_WEIGHTS, backend="onnxruntime", engine_cache_dir=tmp_path)
    assert "digest mismatch" in caplog.text and again.decisions[-1].startswith("built onnx")
    y = np.random.default_rng(0).random((64, 80), dtype=np.float32)
    assert np.abs(again.backend.run_numpy(y, y) - first.backend.run_numpy(y, y)).max() < 1e-5


def test_failed_build_leaves_nothing_behind(tmp_path):
    cache = ArtifactCache(tmp_path)

    def build(path: Path) -> None:
        path.write_text("half an engine")
        raise RuntimeError("out of GPU memory")

    with pytest.raises(RuntimeError, match="out of GPU memory"):
        cache.get_or_build(PARTS, ".ep", build, lambda p: p)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_folder_falls_back_to_the_user_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home_cache"))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="sage_core.backends"):
        cache = ArtifactCache(blocker / "engines")  # a folder inside a file: cannot be created
    assert cache.folder == tmp_path / "home_cache" / "sage_ros" / "engines"
    assert "not writable" in caplog.text


# ----- auto --------------------------------------------------------------------------------------

def test_auto_on_cpu_measures_and_reports(tmp_path):
    loaded = load(DEFAULT_WEIGHTS, engine_cache_dir=tmp_path)
    text = " | ".join(loaded.decisions)
    if HAS_ORT:
        assert "measured onnxruntime" in text and "torch" in text
        assert loaded.backend.name in ("onnxruntime", "torch")
    else:
        assert "skipped onnxruntime" in text and loaded.backend.name == "torch"


def test_auto_without_onnxruntime_chooses_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(OnnxRuntimeBackend, "available", classmethod(lambda cls, device: (False, "not installed")))
    loaded = load(DEFAULT_WEIGHTS, engine_cache_dir=tmp_path)
    assert loaded.backend.name == "torch"
    assert "skipped onnxruntime: not installed" in loaded.decisions


@pytest.mark.parametrize("have, expected", [
    ({"tensorrt", "onnxruntime", "torch"}, ["tensorrt", "onnxruntime", "torch"]),
    ({"onnxruntime", "torch"}, ["onnxruntime", "torch"]),
    ({"torch"}, ["torch"]),
])
def test_auto_order_on_a_gpu(monkeypatch, have, expected):
    for name, cls in BACKENDS.items():
        monkeypatch.setattr(cls, "available", classmethod(lambda c, device, ok=name in have: (ok, "missing")))
    candidates, skipped = auto_candidates(torch.device("cuda"))
    assert candidates == expected
    assert len(skipped) == 3 - len(expected)


def test_tensorrt_path_when_available(tmp_path):
    if not TensorRTBackend.available(torch.device("cuda") if torch.cuda.is_available() else CPU)[0]:
        pytest.skip("torch-tensorrt with a CUDA device is not available here")
    options = {"backend": "tensorrt", "device": "cuda", "engine_cache_dir": tmp_path, "engine_shape": (128, 160)}
    loaded, again = load(DEFAULT_WEIGHTS, **options), load(DEFAULT_WEIGHTS, **options)
    assert loaded.decisions[-1].startswith("built") and again.decisions[-1].startswith("loaded cached")


@pytest.mark.parametrize("height, width", [(128, 160), (97, 131)])  # odd sizes: partial pooling windows
def test_torch_backend_applies_affine_fuse_coefficients_in_opencv_with_the_same_result(height, width):
    from sage_core.backends import TorchBackend, prepare_for_inference
    from sage_core.checkpoint import load_model

    model = load_model(DEFAULT_WEIGHTS)[0]
    backend = TorchBackend(model, CPU)
    assert backend.split_affine and "OpenCV" in backend.detail
    rng = np.random.default_rng(1)
    y, ir = (rng.random((height, width), dtype=np.float32) for _ in range(2))
    with torch.inference_mode():
        expected = prepare_for_inference(model)(torch.from_numpy(y)[None, None], torch.from_numpy(ir)[None, None])
    assert np.abs(backend.run_numpy(y, ir) - expected[0, 0].numpy()).max() < 1e-5


@needs_ort
@pytest.mark.parametrize("height, width", [(128, 160), (97, 131)])
def test_onnxruntime_runs_the_affine_head_and_opencv_the_rest_with_the_same_result(height, width, tmp_path):
    from sage_core.backends import prepare_for_inference
    from sage_core.checkpoint import load_model

    backend = load(DEFAULT_WEIGHTS, backend="onnxruntime", engine_cache_dir=tmp_path).backend
    assert backend.split_affine and list(tmp_path.glob("onnx_affine_pooled_head_*.onnx"))
    rng = np.random.default_rng(2)
    y, ir = (rng.random((height, width), dtype=np.float32) for _ in range(2))
    with torch.inference_mode():
        expected = prepare_for_inference(load_model(DEFAULT_WEIGHTS)[0])(torch.from_numpy(y)[None, None],
                                                                          torch.from_numpy(ir)[None, None])
    assert np.abs(backend.run_numpy(y, ir) - expected[0, 0].numpy()).max() < 1e-5


@pytest.mark.parametrize("height, width", [(16, 20), (17, 23), (3, 5), (1, 1), (9, 4)])
def test_pooling_outside_the_graph_is_avg_pool_with_ceil_mode(height, width):
    from sage_core.backends.affine_cpu import pool_pair

    rng = np.random.default_rng(3)
    y, ir = (rng.random((height, width), dtype=np.float32) for _ in range(2))
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(np.stack((y, ir)))[None], 4, ceil_mode=True)
    pooled = pool_pair(y, ir, 4)
    assert pooled.shape == tuple(expected.shape)
    assert np.abs(pooled - expected.numpy()).max() < 1e-6


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnxruntime", marks=needs_ort)])
def test_a_bounded_head_pools_large_frames_by_a_multiple_of_the_models_factor(backend, tmp_path, monkeypatch):
    import torch.nn.functional as F

    from sage_core.backends import affine_cpu
    from sage_core.checkpoint import load_model

    assert affine_cpu.head_pooling(1024, 1280, 4) == 4  # off by default: the full graph's output
    monkeypatch.setattr(affine_cpu, "MAX_HEAD_PIXELS", 2 * 160 * 128)
    assert [affine_cpu.head_pooling(h, w, 4) for h, w in ((512, 640), (600, 800), (1024, 1280), (2160, 3840))] == [
        4, 4, 8, 16]
    height, width = 1024, 1280
    rng = np.random.default_rng(5)
    y, ir = (rng.random((height, width), dtype=np.float32) for _ in range(2))
    model = load_model(DEFAULT_WEIGHTS)[0].eval()
    with torch.inference_mode():  # AffineFuse's forward with 8 x 8 pooling in place of 4 x 4
        y_t, ir_t = torch.from_numpy(y)[None, None], torch.from_numpy(ir)[None, None]
        low = model.from_pooled(F.avg_pool2d(torch.cat((y_t, ir_t), dim=1), 8, ceil_mode=True))[0]
        a, b, c = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False).unbind(1)
        expected = (a * y_t[:, 0] + b * ir_t[:, 0] + c)[0].numpy()
    fused = load(DEFAULT_WEIGHTS, backend=backend, engine_cache_dir=tmp_path).backend.run_numpy(y, ir)
    assert np.abs(fused - expected).max() < 1e-5


class _Blend(torch.nn.Module):
    """Coefficients (a, b, c) = (0.25, 0.75, 0.1) everywhere, at the pooled resolution."""

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(pooled[:, :1])
        return torch.cat((0.25 * ones, 0.75 * ones, 0.1 * ones), dim=1)


class _SplitModel(SageStudent):
    """Not an AffineFuse, but it offers a CPU split: the backends must take it from the model alone."""

    def cpu_split(self) -> CpuSplit:
        return CpuSplit(4, _Blend())


def test_the_torch_backend_takes_the_cpu_split_the_model_offers():
    from sage_core.backends import TorchBackend

    rng = np.random.default_rng(6)
    y, ir = (rng.random((37, 50), dtype=np.float32) for _ in range(2))
    backend = TorchBackend(_SplitModel(), CPU)
    assert backend.split_affine and "OpenCV" in backend.detail
    assert np.abs(backend.run_numpy(y, ir) - (0.25 * y + 0.75 * ir + 0.1)).max() < 1e-6
    assert not TorchBackend(SageStudent(), CPU).split_affine  # the base class offers none
    assert not TorchBackend(AffineFuse(refine=4), CPU).split_affine  # the refinement needs the full graph
    assert AffineFuse(refine=0).cpu_split().scale == 4
