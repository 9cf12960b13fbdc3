"""Detector-in-the-loop training made cheap: the compiled graph, window geometry, cached targets, a tiny fit."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sage_core.errors import ConfigError
from sage_core.eval.tfjs_compiled import CompiledGraph
from sage_core.eval.tfjs_graph import TfjsGraph, resize_bilinear_legacy
from sage_core.models import AffineChromaFuse
from sage_core.train.detection_data import split_index
from sage_core.train.detection_fit import DetectionFit, compose_window
from sage_core.train.detection_fit_config import load_fit_config
from sage_core.train.detection_targets import TargetCache, TargetSettings, WindowDetector
from sage_core.train.detector_windows import kept_cells, window_geometry, windows

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "training" / "configs" / "detection_fuse.yaml"


def _tiny_centernet(folder: Path) -> Path:
    """A TF.js graph shaped like CenterNet's outputs: 64x64 input, a stride-4 conv, hard-swish, a 2-class sigmoid
    heat-map (bright; red minus blue) and 4 box sizes, at 1/4 of the input."""
    rng = np.random.default_rng(0)
    stem = rng.normal(0, 0.02, (4, 4, 3, 6)).astype(np.float32)
    bias = np.zeros(6, np.float32)
    heat_w = np.zeros((1, 1, 6, 2), np.float32)
    heat_w[0, 0, :3, 0], heat_w[0, 0, 3:, 1] = 0.5, 0.3
    size_w = np.abs(rng.normal(0, 0.1, (1, 1, 6, 4))).astype(np.float32)
    three, sixth = np.array([3.0], np.float32), np.array([1 / 6], np.float32)
    arrays = {"stem": stem, "bias": bias, "heat_w": heat_w, "size_w": size_w, "three": three, "sixth": sixth}
    (folder / "tiny.bin").write_bytes(b"".join(a.tobytes() for a in arrays.values()))

    def node(name, op, inputs=(), **attr):
        return {"name": name, "op": op, "input": list(inputs), "attr": attr}

    def strides(s):
        return {"list": {"i": [str(v) for v in (1, s, s, 1)]}}
    same, valid = {"s": base64.b64encode(b"SAME").decode()}, {"s": base64.b64encode(b"VALID").decode()}
    fused = {"list": {"s": [base64.b64encode(b"BiasAdd").decode()]}}
    nodes = [node("tower_0/images", "Placeholder")] + [node(k, "Const") for k in arrays] + [
        node("conv", "_FusedConv2D", ["tower_0/images", "stem", "bias"], strides=strides(4), padding=same,
             fused_ops=fused),
        node("hs/add", "Add", ["conv", "three"]), node("hs/relu6", "Relu6", ["hs/add"]),
        node("hs/mul", "Mul", ["sixth", "conv"]), node("hs/out", "Mul", ["hs/mul", "hs/relu6"]),
        node("heat", "Conv2D", ["hs/out", "heat_w"], strides=strides(1), padding=valid),
        node("tower_0/keypoints", "Sigmoid", ["heat"]),
        node("tower_0/wh", "Conv2D", ["hs/out", "size_w"], strides=strides(1), padding=valid)]
    graph = {"modelTopology": {"node": nodes}, "signature": {"inputs": {"tower_0/images": {"tensorShape": {"dim": [
        {"size": "1"}, {"size": "64"}, {"size": "64"}, {"size": "3"}]}}}},
        "weightsManifest": [{"paths": ["tiny.bin"], "weights": [
            {"name": k, "shape": list(a.shape), "dtype": "float32"} for k, a in arrays.items()]}]}
    path = folder / "tiny.json"
    path.write_text(json.dumps(graph))
    return path


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory) -> Path:
    return _tiny_centernet(tmp_path_factory.mktemp("tiny_centernet"))


def _compare(graph: TfjsGraph, x_nhwc: torch.Tensor, outputs=("tower_0/keypoints", "tower_0/wh")) -> list[float]:
    compiled = CompiledGraph(graph, outputs).eval()
    with torch.no_grad():
        reference = graph(x_nhwc, outputs)
        ours = compiled(x_nhwc.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last))
    return [float((reference[name].permute(0, 3, 1, 2) - value).abs().max() / reference[name].abs().max())
            for name, value in zip(outputs, ours)]


def test_the_compiled_graph_computes_what_the_op_by_op_graph_does_and_fuses_hard_swish(tiny_graph):
    graph = TfjsGraph(tiny_graph)
    compiled = CompiledGraph(graph, ("tower_0/keypoints", "tower_0/wh"))
    assert [s.op for s in compiled.steps].count("Hardswish") == 1 and not any(
        s.op in ("Add", "Relu6") for s in compiled.steps)  # the four nodes became one step
    assert max(_compare(graph, torch.rand(2, 64, 64, 3) * 255)) < 1e-5


def test_the_compiled_centernet_equals_the_graph_and_takes_a_window(centernet_json):
    graph = TfjsGraph(centernet_json)
    vis = cv2.imread(str(REPO.parent / "shared/datasets/msrs180/vis/00008N.png")) if (
        REPO.parent / "shared/datasets/msrs180").exists() else (np.random.default_rng(0).random((480, 640, 3)) * 255)
    x = resize_bilinear_legacy(torch.from_numpy(np.ascontiguousarray(vis[:, :, ::-1])).float()[None], 512, 512)
    assert max(_compare(graph, x)) < 1e-4
    heat, sizes = CompiledGraph(graph, ("tower_0/keypoints", "tower_0/wh"))(torch.rand(1, 3, 256, 256) * 255)
    assert heat.shape == (1, 80, 64, 64) and sizes.shape == (1, 4, 64, 64)


def _trained_looking_model() -> AffineChromaFuse:
    model = AffineChromaFuse(width=8, dilations=(1, 2))
    with torch.no_grad():
        model.coefficients.weight.normal_(0, 0.05)  # coefficients that vary over the frame, as after training
    return model


@pytest.mark.parametrize("native", [(480, 640), (333, 501)])
def test_a_window_is_exactly_the_crop_of_the_whole_frame_resized_for_the_detector(native):
    model = _trained_looking_model()
    gen = torch.Generator().manual_seed(0)
    planes = {k: torch.rand(1, 1, *native, generator=gen) for k in ("y", "ir", "cr", "cb")}
    with torch.no_grad():
        out = model(planes["y"], planes["ir"])
        fused, gain = out[:, 0:1], out[:, 1:2]
        rgb = torch.cat((fused + 1.403 * gain * (planes["cr"] - 0.5),
                         fused - 0.714 * gain * (planes["cr"] - 0.5) - 0.344 * gain * (planes["cb"] - 0.5),
                         fused + 1.773 * gain * (planes["cb"] - 0.5)), 1).clamp(0, 1) * 255
        whole = resize_bilinear_legacy(rgb.permute(0, 2, 3, 1), 512, 512).permute(0, 3, 1, 2)
        low = model.low_resolution(planes["y"], planes["ir"])[0]
        for window in windows((512, 512), 256, 128):
            geometry = window_geometry(native, tuple(low.shape[2:]), (512, 512), window)
            r0, r1, c0, c1 = geometry.region
            crop, _, _ = compose_window(low, {k: v[..., r0:r1, c0:c1] for k, v in planes.items()}, geometry)
            expected = whole[..., window.top:window.top + 256, window.left:window.left + 256]
            assert float((crop - expected).abs().max()) < 1e-3  # 0..255 scale


def test_kept_cells_of_the_windows_cover_the_whole_output_grid_and_drop_inner_borders():
    grid = windows((512, 512), 256, 128)
    assert len(grid) == 9
    covered = torch.zeros(128, 128)
    for window in grid:
        rows, cols = window.cells()
        covered[rows, cols] += kept_cells(window, (512, 512), 8)
    assert bool((covered > 0).all())
    middle = kept_cells(grid[4], (512, 512), 8)
    assert float(middle[:8].sum()) == 0 and float(middle[8:56, 8:56].min()) == 1
    corner = kept_cells(grid[0], (512, 512), 8)
    assert float(corner[:8, :8].min()) == 1 and float(corner[56:].sum()) == 0  # the frame's edge is kept


def test_the_chroma_model_starts_as_the_plain_per_channel_average():
    from sage_core import Fuser

    rng = np.random.default_rng(1)
    vis = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    fused = Fuser(AffineChromaFuse(), device="cpu").fuse(ir, vis)
    average = cv2.addWeighted(vis, 0.5, cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR), 0.5, 0)
    difference = np.abs(fused.astype(int) - average.astype(int))
    assert difference.max() <= 2 and difference.mean() < 0.7  # the YCrCb round trip's rounding only
    visible_colour = Fuser(AffineChromaFuse(), device="cpu").fuse_planes(vis[..., 1] / 255.0, ir / 255.0)[1]
    assert np.allclose(visible_colour, 0.5)


def test_targets_are_computed_once_then_read_back(tiny_graph, tmp_path):
    detector = WindowDetector(f"centernet:{tiny_graph}", [0, 1])
    cache = TargetCache(tmp_path, detector, TargetSettings(window=32, stride=16))
    ir = np.zeros((48, 64), np.uint8)
    ir[10:30, 20:40] = 250
    vis = np.full((48, 64, 3), 40, np.uint8)
    first = cache.targets(ir, vis)
    again = cache.targets(ir, vis)
    assert (cache.misses, cache.hits) == (1, 1)
    assert first.heat.shape == (9, 2, 8, 8) and first.sizes.shape == (9, 4, 8, 8)
    assert np.array_equal(first.heat, again.heat) and first.heat.dtype == np.float16
    # the thermal's bright square is in the target: the max of the two cameras keeps what only thermal shows
    assert float(first.heat[:, 0].max()) > float(detector(torch.full((1, 3, 32, 32), 40.0)).heatmap[:, 0].max())


def _dataset(folder: Path, count: int = 4) -> Path:
    rng = np.random.default_rng(2)
    for sub in ("ir", "vis"):
        (folder / sub).mkdir(parents=True)
    for i in range(count):
        ir = np.full((48, 64), 30, np.uint8)
        ir[8 + i:28 + i, 16:36] = 240
        vis = rng.integers(20, 120, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / "ir" / f"{i:03d}.png"), ir)
        cv2.imwrite(str(folder / "vis" / f"{i:03d}.png"), vis)
    return folder


def test_a_tiny_fit_trains_the_model_and_leaves_the_detector_frozen(tiny_graph, tmp_path):
    data = _dataset(tmp_path / "pairs")
    config = load_fit_config(CONFIG, [f"detector.detector=centernet:{tiny_graph}", "detector.classes=[0, 1]",
                                      "detector.window=32", "detector.stride=16", "detector.border=1",
                                      f"detector.cache_dir={tmp_path / 'targets'}", f"data.train=[{data}]",
                                      "data.val=[]", "data.val_every=6", "optim.steps=6", "optim.lr=0.01",
                                      "model.config={width: 8, dilations: [1, 2]}", "loss.anchor=0.1",
                                      "run.log_every=3"])
    fit = DetectionFit(config, tmp_path / "run", progress=False)
    before = [p.clone() for p in fit.detector.net.parameters()]
    start = [p.detach().clone() for p in fit.model.parameters()]
    summary = fit.run()
    assert summary["steps"] == 6 and summary["target_cache"]["misses"] == 4
    assert all(torch.equal(a, b) for a, b in zip(before, fit.detector.net.parameters()))
    assert all(p.grad is None for p in fit.detector.net.parameters())
    assert any(not torch.equal(a, b.detach()) for a, b in zip(start, fit.model.parameters()))
    assert sorted(p.name for p in (tmp_path / "run").glob("step_*.pt")) == ["step_000000.pt", "step_000006.pt"]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("anchor" in r for r in log) and all(np.isfinite(r["loss"]) for r in log if "loss" in r)


def test_the_msrs_split_keeps_the_test_half_apart_and_the_config_refuses_training_on_it(tmp_path):
    test = {i for i in range(180) if split_index(i, "test")}
    val = {i for i in range(180) if split_index(i, "val")}
    train = {i for i in range(180) if split_index(i, "train")}
    assert len(test) == 90 and len(val) == len(train) == 45
    assert not (test & val or test & train or val & train)
    with pytest.raises(ConfigError, match="data.train: .*the test split is never trained on"):
        load_fit_config(CONFIG, ["data.train=[{path: x, split: test}]"])
    with pytest.raises(ConfigError, match="detector.window/stride/border"):
        load_fit_config(CONFIG, ["detector.window=100"])
    with pytest.raises(ConfigError, match="unknown key.*optim.stepz"):
        load_fit_config(CONFIG, ["optim.stepz=3"])
    with pytest.raises(ConfigError, match="optim.batch 5: expected a multiple of optim.images"):
        load_fit_config(CONFIG, ["optim.batch=5"])


def test_the_pooled_input_is_the_models_own():
    from sage_core.train.detection_data import pooled_input

    rng = np.random.default_rng(3)
    y, ir = (rng.integers(0, 256, (50, 70), dtype=np.uint8) for _ in range(2))
    expected = F.avg_pool2d(torch.from_numpy(np.stack((y, ir))).float()[None] / 255.0, 4, ceil_mode=True)
    assert torch.allclose(pooled_input(y, ir, 4), expected)


def test_labels_of_a_training_split_add_peaks_where_the_boxes_are(tmp_path):
    from sage_core.train.detection_labels import gaussian_radius, label_heatmap

    label = tmp_path / "a.txt"
    label.write_text("0 0.25 0.5 0.05 0.2\n2 0.75 0.25 0.2 0.1\n1 0.5 0.5 0.1 0.1\n")  # person, car, bicycle
    heat = label_heatmap(label, (480, 640), (512, 512), [0, 2, 5, 7])
    assert heat.shape == (4, 128, 128)
    assert heat[0, 64, 32] == 1.0 and heat[1, 32, 96] == 1.0  # peaks at the box centres, in their channels
    assert heat[2:].max() == 0 and np.count_nonzero(heat[0] == 1.0) == 1  # no bus/truck/bicycle peaks
    assert 0 < heat[0, 64, 33] < 1 and heat[0, 64, 40] == 0  # a Gaussian of the box's radius, not beyond
    assert gaussian_radius(10, 10) < gaussian_radius(40, 40)
    with pytest.raises(ConfigError, match="labels are read for training on the train split only"):
        load_fit_config(CONFIG, ["data.train=[{path: x, split: all, labels: fusion}]"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_chroma_model_exports_and_its_colour_survives(tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    from sage_core import Fuser, InferenceOptions
    from sage_core.checkpoint import save_checkpoint
    from sage_core.export import export_model

    model = _trained_looking_model()
    with torch.no_grad():
        model.coefficients.bias.copy_(torch.tensor([0.6, 0.3, 0.05, 0.2]))  # a chroma gain far from 1
    source = save_checkpoint(model, tmp_path / "m.pt")
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.ts")
    export_model(source, fmt, out, device="cpu")
    rng = np.random.default_rng(4)
    vis = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    exported = Fuser.from_options(InferenceOptions(model_file_path=out, device="cpu"))
    eager = Fuser(model, device="cpu")
    assert exported.chroma_output and eager.chroma_output
    assert np.abs(exported.fuse(ir, vis).astype(int) - eager.fuse(ir, vis).astype(int)).max() <= 1
    fused = eager.fuse(ir, vis).astype(int)
    assert np.abs(fused[..., 0] - fused[..., 2]).mean() < np.abs(
        vis[..., 0].astype(int) - vis[..., 2]).mean() / 2  # the gain took most of the colour away
