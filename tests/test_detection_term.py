"""teacher.detection: a frozen detector's label-free term, on a tiny synthetic detector and a tiny TF.js graph."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from sage_core.errors import ConfigError
from sage_core.train.config import load_config
from sage_core.train.detection import DetectionConfig, DetectionTerm
from sage_core.train.detectors import DetectorOutput

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "training" / "configs" / "smoke.yaml"


class BlobDetector(nn.Module):
    """Two classes at 1/4 resolution: 0 fires on bright regions, 1 on reddish ones; sizes from brightness."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.heads = nn.Conv2d(3, 2, 3, padding=1)
        self.sizes = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.heads.weight.zero_()
            self.heads.weight[0, :, 1, 1] = 1.0 / 3.0  # channel 0: mean brightness
            self.heads.weight[1, 0, 1, 1], self.heads.weight[1, 2, 1, 1] = 1.0, -1.0  # channel 1: red - blue
            self.heads.bias.copy_(torch.tensor([-0.6, -0.3]))
            self.sizes.weight.fill_(2.0)
            self.sizes.bias.fill_(1.0)

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool(rgb)
        return torch.sigmoid(20.0 * self.heads(x)), self.sizes(x)


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("detector") / "blobs.pt"
    torch.jit.script(BlobDetector()).save(str(path))
    return path


def _scene(size: int = 32) -> tuple[torch.Tensor, ...]:
    """Dark visible crop with neutral colour, thermal with one hot square: what only thermal shows."""
    y = torch.full((1, 1, size, size), 0.2)
    ir = torch.full((1, 1, size, size), 0.1)
    ir[..., 8:20, 10:22] = 0.95
    grey = torch.full_like(y, 0.5)
    return y, ir, grey, grey.clone()


def _term(detector_file: Path, **settings) -> DetectionTerm:
    return DetectionTerm(DetectionConfig(detector=str(detector_file), **settings), torch.device("cpu"))


def test_term_is_zero_on_the_frame_with_the_detections_and_higher_on_the_camera_without(detector_file):
    term = _term(detector_file)
    y, ir, cr, cb = _scene()
    on_thermal, on_visible = float(term.loss(ir, y, ir, cr, cb)), float(term.loss(y, y, ir, cr, cb))
    assert on_thermal < 1e-6 < 0.1 < on_visible  # the fused frame misses the hot square: penalised
    blank = torch.full_like(y, 0.2)
    assert float(term.loss(blank, blank, blank, cr, cb)) < 1e-6  # nothing anywhere, nothing asked
    targets = term.targets(y, ir, cr, cb)
    assert int(targets.peaks.sum()) >= 1 and targets.peaks[:, 1].sum() == 0  # one bright object, no red one


def test_max_keeps_what_either_camera_finds_and_mean_halves_it(detector_file):
    y, ir, cr, cb = _scene()
    y[..., 20:28, 2:10] = 0.95  # a bright object only the visible camera sees
    term = _term(detector_file)
    targets = term.targets(y, ir, cr, cb)
    thermal, visible = term.detector(ir.expand(-1, 3, -1, -1)).heatmap, term.detector(y.expand(-1, 3, -1, -1))
    expected = torch.maximum(thermal, visible.heatmap)
    assert torch.equal(targets.heatmap, torch.where(expected >= 0.05, expected, torch.zeros_like(expected)))
    mean = _term(detector_file, targets="mean").targets(y, ir, cr, cb).heatmap
    assert float(mean.max()) < 0.6 * float(targets.heatmap.max())
    assert float(term.loss(torch.maximum(y, ir), y, ir, cr, cb)) < 0.05 * float(term.loss(ir, y, ir, cr, cb))


def test_loss_falls_when_the_fused_frame_is_optimised_through_the_frozen_detector(detector_file):
    y, ir, cr, cb = _scene()
    for kind in ("focal", "bce"):
        term = _term(detector_file, loss=kind)
        fused = y.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([fused], lr=0.05)
        losses = []
        for _ in range(12):
            loss = term.loss(fused, y, ir, cr, cb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        assert losses[-1] < 0.1 * losses[0], (kind, losses)
        assert all(p.grad is None for p in term.detector.parameters())


def test_size_term_is_relative_and_only_at_target_objects():
    from sage_core.train.detection import combine_targets, size_loss

    heat = torch.zeros(1, 1, 8, 8)
    heat[0, 0, 3, 4] = 0.9
    sizes = torch.full((1, 2, 8, 8), 10.0)
    targets = combine_targets(DetectorOutput(heat, sizes), DetectorOutput(heat * 0.5, sizes * 3), "max", 0.05, 0.3)
    fused = sizes.clone()
    fused[0, :, 3, 4] = 12.0  # 20 % off at the one object
    fused[0, :, 0, 0] = 99.0  # anywhere else does not count
    assert float(size_loss(fused, targets)) == pytest.approx(0.2)  # the sizes of the more confident camera
    in_pixels = combine_targets(DetectorOutput(heat, sizes * 1000), DetectorOutput(heat * 0.5, sizes), "max", 0.05, 0.3)
    assert float(size_loss(fused * 1000, in_pixels)) == pytest.approx(0.2)  # relative: any unit
    assert float(size_loss(fused, combine_targets(DetectorOutput(heat * 0.2, sizes), DetectorOutput(heat * 0.1, sizes),
                                                  "max", 0.05, 0.3))) == 0.0  # no object: no size term


def _write_dataset(root: Path, count: int = 2, size: tuple[int, int] = (48, 40)) -> Path:
    """Pairs with a hot square in thermal only (on a dark visible frame): what the term should pull in."""
    (root / "ir").mkdir(parents=True)
    (root / "vis").mkdir()
    for index in range(count):
        ir = np.full(size, 30, np.uint8)
        ir[10 + 4 * index:26 + 4 * index, 12:28] = 240
        vis = np.full((*size, 3), 50, np.uint8)
        vis[:, : size[1] // 2, 2] = 80  # some colour, so the chroma path matters
        cv2.imwrite(str(root / "ir" / f"{index:03d}.png"), ir)
        cv2.imwrite(str(root / "vis" / f"{index:03d}.png"), vis)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("detection_data") / "train")


def _overrides(data: Path, tmp: Path, detection: str, **extra) -> list[str]:
    values = {"data.train": f"[{data}]", "data.val": "null", "data.holdout": 0, "data.crop": "[32, 32]",
              "teacher.kind": "none", "sam.cache_dir": str(tmp / "cache"), "teacher.detection": detection, **extra}
    return [f"{k}={v}" for k, v in values.items()]


def test_distillation_with_the_term_trains_the_student_and_leaves_the_detector_bit_identical(data, detector_file,
                                                                                              tmp_path):
    from sage_core.train.distiller import Distiller

    config = load_config(SMOKE, _overrides(data, tmp_path, f"{{detector: {detector_file}, weight: 2.0}}",
                                           **{"run.steps": 3, "run.checkpoint_every": 100}))
    distiller = Distiller(config, tmp_path / "run", progress=False)
    frozen = [p.detach().clone() for p in distiller.detection.detector.parameters()]
    student = [p.detach().clone() for p in distiller.student.parameters()]
    batch = distiller._batch()
    assert batch.cr is not None and batch.cb is not None  # chroma is loaded for the detector's colour frames
    fused = distiller.student.train()(batch.y, batch.ir)
    distiller.detection.loss(fused, batch.y, batch.ir, batch.cr, batch.cb).backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in distiller.student.parameters())
    assert all(p.grad is None for p in distiller.detection.detector.parameters())
    distiller.student.zero_grad(set_to_none=True)
    values = distiller.student_step()
    assert values["student/detection"] > 0 and np.isfinite(values["student/loss"])
    summary = distiller.run()
    assert summary["steps"] == 3
    assert all(torch.equal(a, b) for a, b in zip(frozen, distiller.detection.detector.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(student, distiller.student.parameters()))


def test_the_term_on_the_spa_teacher_step(data, detector_file, tmp_path):
    from sage_core.train.distiller import Distiller

    overrides = _overrides(data, tmp_path, f"{{detector: {detector_file}, applies_to: both}}",
                           **{"teacher.kind": "spa", "sam.allow_random": "true", "run.steps": 2, "data.max_images": 1})
    distiller = Distiller(load_config(SMOKE, overrides), tmp_path / "run", progress=False)
    teacher = [p.detach().clone() for p in distiller.teacher.parameters()]
    values = distiller.teacher_step()
    assert values["teacher/detection"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(teacher, distiller.teacher.parameters()))
    assert "student/detection" in distiller.student_step()


@pytest.mark.parametrize("detection, extra, message", [
    ("{detector: /no/such/detector.pt}", {}, "teacher.detection.detector: /no/such/detector.pt not found"),
    ("{detector: model.onnx}", {}, "teacher.detection.detector: cannot tell the kind of 'model.onnx'"),
    ("{detector: centernet:/no/centernet.json}", {}, "/no/centernet.json not found (TF.js graph)"),
    ("{detector: DET, weight: 0}", {}, "teacher.detection.weight: expected a number > 0.0, got 0"),
    ("{detector: DET, weight: -1}", {}, "teacher.detection.weight: expected a number > 0.0"),
    ("{detector: DET, applies_to: teacher}", {}, "applies_to teacher: the teacher only trains with teacher.kind spa"),
    ("{detector: DET, applies_to: fused}", {}, "teacher.detection.applies_to: 'fused'; expected one of"),
    ("{detector: DET, targets: min}", {}, "teacher.detection.targets: 'min'; expected one of max, mean"),
    ("{detector: DET, loss: l2}", {}, "teacher.detection.loss: 'l2'; expected one of focal, bce"),
    ("{detector: DET, min_score: 2}", {}, "teacher.detection.min_score: expected a number >= 0.0 and <= 1.0"),
    ("{detector: DET, input_size: [512]}", {}, "teacher.detection.input_size: expected [N, N] of integers"),
    ("{detector: DET, classes: [-1]}", {}, "teacher.detection.classes: expected a non-empty list"),
    ("{detector: DET, outputs: []}", {}, "teacher.detection.outputs: expected [heatmap] or [heatmap, sizes]"),
    ("{detector: DET, bogus: 1}", {}, "unknown key(s) teacher.detection.bogus"),
])
def test_bad_detection_settings_are_refused_with_their_key(data, detector_file, tmp_path, detection, extra, message):
    with pytest.raises(ConfigError) as caught:
        load_config(SMOKE, _overrides(data, tmp_path, detection.replace("DET", str(detector_file)), **extra))
    assert message in str(caught.value)


def test_a_detector_that_breaks_the_protocol_is_named(detector_file, tmp_path):
    logits = tmp_path / "logits.pt"
    torch.jit.script(nn.Conv2d(3, 2, 3, padding=1)).save(str(logits))
    y, ir, cr, cb = _scene()
    with pytest.raises(ConfigError, match=r"heat-map values in .* expected probabilities in \[0, 1\]"):
        _term(logits).loss(y, y, ir, cr, cb)
    with pytest.raises(ConfigError, match="teacher.detection.classes: \\[5\\] outside the detector's 2 classes"):
        _term(detector_file, classes=[5]).loss(y, y, ir, cr, cb)
    not_script = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, not_script)
    with pytest.raises(ConfigError, match="is not a TorchScript model"):
        _term(not_script)


def _tiny_tfjs_graph(folder: Path) -> Path:
    """A TF.js graph model of our own: 8x8 NHWC input, a 1x1 conv -> Sigmoid heat-map, a 1x1 conv of sizes."""
    heat_w = np.array([[[[0.01], [0.0], [-0.01]]]], np.float32)  # (1, 1, 3 in, 1 out): (R - B) / 100
    size_w = np.full((1, 1, 3, 2), 0.01, np.float32)
    (folder / "tiny.bin").write_bytes(heat_w.tobytes() + size_w.tobytes())

    def node(name, op, inputs=(), **attr):
        return {"name": name, "op": op, "input": list(inputs), "attr": attr}
    conv = {"strides": {"list": {"i": ["1", "1", "1", "1"]}}, "padding": {"s": base64.b64encode(b"VALID").decode()}}
    graph = {"modelTopology": {"node": [
        node("image", "Placeholder"), node("heat_w", "Const"), node("size_w", "Const"),
        node("logits", "Conv2D", ["image", "heat_w"], **conv), node("out/heat", "Sigmoid", ["logits"]),
        node("out/sizes", "Conv2D", ["image", "size_w"], **conv)]},
        "signature": {"inputs": {"image": {"tensorShape": {"dim": [{"size": "-1"}, {"size": "8"}, {"size": "8"},
                                                                    {"size": "3"}]}}}},
        "weightsManifest": [{"paths": ["tiny.bin"], "weights": [
            {"name": "heat_w", "shape": [1, 1, 3, 1], "dtype": "float32"},
            {"name": "size_w", "shape": [1, 1, 3, 2], "dtype": "float32"}]}]}
    path = folder / "tiny.json"
    path.write_text(json.dumps(graph))
    return path


def test_a_tfjs_graph_detector_through_the_protocol(tmp_path):
    model = _tiny_tfjs_graph(tmp_path)
    term = DetectionTerm(DetectionConfig(detector=f"centernet:{model}", outputs=["out/heat", "out/sizes"]),
                         torch.device("cpu"))
    rgb = torch.rand(2, 3, 16, 16, requires_grad=True)
    output = term.detector(rgb)
    assert output.heatmap.shape == (2, 1, 8, 8) and output.sizes.shape == (2, 2, 8, 8)  # resized to the signature
    from sage_core.eval.tfjs_graph import resize_bilinear_legacy

    nhwc = resize_bilinear_legacy(rgb.detach().permute(0, 2, 3, 1) * 255.0, 8, 8)  # as human feeds the graph
    expected = torch.sigmoid((nhwc[..., 0] - nhwc[..., 2]) / 100.0)
    assert torch.allclose(output.heatmap[:, 0], expected, atol=1e-6)
    assert torch.allclose(output.sizes[:, 1], nhwc.sum(-1) * 0.01, atol=1e-5)
    output.heatmap.sum().backward()
    assert rgb.grad is not None and float(rgb.grad.abs().sum()) > 0
    with pytest.raises(ConfigError, match="teacher.detection.outputs: tower_0/keypoints, tower_0/wh not in tiny.json"):
        DetectionTerm(DetectionConfig(detector=str(model)), torch.device("cpu"))


def test_the_converted_centernet_as_the_detector(centernet_json):
    term = DetectionTerm(DetectionConfig(detector=f"centernet:{centernet_json}", classes=[0, 2]), torch.device("cpu"))
    y, ir, cr, cb = (t[..., :24, :24].repeat(1, 1, 4, 4) for t in _scene())
    fused = y.clone().requires_grad_(True)
    loss = term.loss(fused, y, ir, cr, cb)
    loss.backward()
    assert np.isfinite(float(loss)) and float(fused.grad.abs().sum()) > 0
    assert all(p.grad is None for p in term.detector.parameters())
