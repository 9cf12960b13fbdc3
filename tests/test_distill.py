"""SAGE training: smoke runs, loss behaviour, mask cache, resume, 2-process DDP, and bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("segment_anything", reason="segment-anything not installed (pip install -e .[sam])")

from sage_core.checkpoint import load_model
from sage_core.errors import ConfigError
from sage_core.synthetic import SyntheticScene
from sage_core.train.config import load_config
from sage_core.train.distiller import Distiller
from tests.conftest import DATASETS, OFFICIAL_CHECKPOINT
from tests.helpers import distill_main

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "training" / "configs" / "smoke.yaml"


def _write_dataset(root: Path, count: int, size: tuple[int, int], seed: int) -> Path:
    (root / "ir").mkdir(parents=True)
    (root / "vis").mkdir()
    scene = SyntheticScene(*size, seed=seed)
    for index in range(count):
        frame = scene.frame(0.7 * index)
        cv2.imwrite(str(root / "ir" / f"{index:03d}.png"), frame.thermal_mono8)
        cv2.imwrite(str(root / "vis" / f"{index:03d}.png"), frame.visible)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("distill_data")
    return {"train": _write_dataset(base / "train", 3, (96, 80), seed=1),
            "val": _write_dataset(base / "val", 2, (96, 80), seed=2), "base": base}


def smoke_overrides(data: dict[str, Path], tmp: Path, **extra) -> list[str]:
    values = {"data.train": f"[{data['train']}]", "data.val": str(data["val"]), "sam.cache_dir": str(tmp / "cache"),
              "sam.allow_random": "true", **extra}
    return [f"{k}={v}" for k, v in values.items()]


def test_smoke_run_writes_a_checkpoint_that_reloads_to_identical_outputs(data, tmp_path):
    config = load_config(SMOKE, smoke_overrides(data, tmp_path))
    distiller = Distiller(config, tmp_path / "run", progress=False)
    summary = distiller.run()
    assert summary["steps"] == 8 and set(summary["seconds_per_step"]) == {"student", "teacher"}
    assert [h["step"] for h in summary["validation"]] == [0, 4, 8]
    assert set(summary["validation"][0]) == {"step", "val/VIF", "val/Qabf", "val/SSIM", "val/MI"}
    model, info = load_model(tmp_path / "run" / "last.pt")
    assert info.arch == "lite_fuse" and info.meta["step"] == 8 and info.meta["teacher"] == "spa"
    x = torch.rand(1, 1, 40, 56), torch.rand(1, 1, 40, 56)
    distiller.student.eval()
    with torch.no_grad():
        assert torch.equal(model(*x), distiller.student(*x))
    teacher, teacher_info = load_model(tmp_path / "run" / "teacher_last.pt")
    assert teacher_info.arch == "spa_teacher"
    for name in ("state.pt", "student_step000004.pt", "config.yaml", "summary.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert list((tmp_path / "run" / "tensorboard").iterdir())


def test_student_loss_falls_on_a_fixed_batch_and_every_term_is_finite(data, tmp_path):
    config = load_config(SMOKE, smoke_overrides(data, tmp_path, **{"optim.student_lr": 0.005, "run.steps": 200}))
    distiller = Distiller(config, tmp_path / "run", progress=False)
    batch = distiller._batch()
    distiller._batch = lambda: batch
    losses = []
    for _ in range(40):
        values = distiller.student_step()
        assert all(np.isfinite(v) for v in values.values()), values
        losses.append(values["student/loss"])
    assert {"student/pixel", "student/feature", "student/contrastive"} <= set(values)
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses
    teacher_values = distiller.teacher_step()
    assert all(np.isfinite(v) for v in teacher_values.values())


def test_mask_cache_is_hit_on_the_second_run(data, tmp_path):
    overrides = smoke_overrides(data, tmp_path, **{"run.steps": 2})
    first = Distiller(load_config(SMOKE, overrides), tmp_path / "a", progress=False)
    assert first.cache.misses == 4 and first.cache.hits == 0  # smoke.yaml: 2 images x 2 modalities
    second = Distiller(load_config(SMOKE, overrides), tmp_path / "b", progress=False)
    assert second.cache.hits == 4 and second.cache.misses == 0


def test_resume_continues_where_the_run_stopped(data, tmp_path):
    args = ["--config", str(SMOKE), "--out", str(tmp_path / "run"), "--quiet"]
    assert distill_main(args + smoke_overrides(data, tmp_path, **{"run.steps": 4})) == 0
    assert distill_main(args + ["--resume"] + smoke_overrides(data, tmp_path, **{"run.steps": 8})) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 8 and [h["step"] for h in summary["validation"]] == [0, 4, 8]
    assert load_model(tmp_path / "run" / "last.pt")[1].meta["step"] == 8


def test_teacher_none_trains_on_fusion_losses_alone(data, tmp_path):
    config = load_config(SMOKE, smoke_overrides(data, tmp_path, **{"teacher.kind": "none", "run.steps": 3}))
    distiller = Distiller(config, tmp_path / "run", progress=False)
    assert distiller.teacher is None and distiller.cache is None
    summary = distiller.run()
    assert set(summary["seconds_per_step"]) == {"student"}


def test_released_student_as_frozen_teacher(data, tmp_path):
    if not OFFICIAL_CHECKPOINT.exists():
        pytest.skip(f"needs {OFFICIAL_CHECKPOINT}")
    code = distill_main(["--config", str(SMOKE), "--out", str(tmp_path / "run"), "--quiet",
                         "--teacher", f"sage-official:{OFFICIAL_CHECKPOINT}"]
                        + smoke_overrides(data, tmp_path, **{"run.steps": 3}))
    assert code == 0
    assert load_model(tmp_path / "run" / "last.pt")[1].meta["teacher"] == "sage-official"
    assert not (tmp_path / "run" / "teacher_last.pt").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ddp_run(data, tmp_path):
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               str(REPO / "training" / "distill.py"), "--config", str(SMOKE), "--out", str(tmp_path / "ddp"),
               "--quiet", *smoke_overrides(data, tmp_path, **{"run.steps": 4})]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    model, info = load_model(tmp_path / "ddp" / "last.pt")
    assert info.arch == "lite_fuse" and info.meta["step"] == 4


@pytest.mark.parametrize("extra, message", [
    ({"data.train": "[/no/such/folder]"}, "thermal input not found"),
    ({"data.crop": "[512, 512]"}, "crop 512x512 (H x W) is larger than"),
    ({"teacher.kind": "magic"}, "teacher.kind 'magic'"),
    ({"sam.allow_random": "false"}, "refusing to train with a randomly initialised SAM"),
    ({"data.bogus": "1"}, "unknown key(s) data.bogus"),
    ({"teacher.kind": "sage-official"}, "needs teacher.checkpoint"),
])
def test_bad_input_is_refused_before_training(data, tmp_path, capsys, extra, message):
    code = distill_main(["--config", str(SMOKE), "--out", str(tmp_path / "run")] + smoke_overrides(
        data, tmp_path, **extra))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_unpaired_images_are_named(data, tmp_path, capsys):
    broken = _write_dataset(tmp_path / "broken", 2, (96, 80), seed=4)
    (broken / "vis" / "001.png").rename(broken / "vis" / "xyz.png")
    code = distill_main(["--config", str(SMOKE), "--out", str(tmp_path / "run")]
                        + smoke_overrides(data, tmp_path, **{"data.train": f"[{broken}]"}))
    assert code == 2 and "thermal without visible partner" in capsys.readouterr().err


def test_sam_checkpoint_of_the_wrong_variant(tmp_path):
    from sage_core.errors import CheckpointError
    from sage_core.train.sam_priors import build_sam

    fake = tmp_path / "sam_vit_l.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}, fake)
    with pytest.raises(CheckpointError, match="this is a SAM vit_l checkpoint, but variant vit_b was requested"):
        build_sam("vit_b", fake)
    with pytest.raises(Exception, match="SAM checkpoint not found"):
        build_sam("vit_b", tmp_path / "absent.pth")


def test_shipped_smoke_config_on_the_shared_data(tmp_path, monkeypatch):
    if not (DATASETS / "msrs180").exists():
        pytest.skip(f"needs {DATASETS}")
    monkeypatch.chdir(REPO)  # the config's ../shared paths are relative to the repository root
    assert distill_main(["--config", str(SMOKE), "--out", str(tmp_path / "smoke"), "--allow-random-sam", "--quiet",
                         f"sam.cache_dir={tmp_path / 'cache'}"]) == 0
    assert (tmp_path / "smoke" / "last.pt").is_file()


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(SMOKE, ["run.steps"])


def test_teacher_shortcut_none_runs_the_shipped_students_config_without_its_teacher_cache():
    """README: `distill.py --config training/configs/affine_fuse.yaml --teacher none` must pass its config check."""
    from sage_core.cli.distill import build_parser, shortcut_overrides

    args = build_parser().parse_args(["--config", str(REPO / "training" / "configs" / "affine_fuse.yaml"),
                                      "--teacher", "none"])
    config = load_config(args.config, shortcut_overrides(args))
    assert config.teacher.kind == "none" and config.teacher.output_cache is None
    with pytest.raises(ConfigError, match="output_cache is for a frozen teacher"):
        load_config(args.config, ["teacher.kind=none"])  # without the shortcut the mismatch is still refused


# ----- issue 13: the released method ---------------------------------------------------------------------

def _distiller(data, tmp_path, **extra) -> Distiller:
    overrides = smoke_overrides(data, tmp_path, **{"sam.cache_dir": str(data["base"] / "cache"), **extra})
    return Distiller(load_config(SMOKE, overrides), tmp_path / "run", progress=False)


def test_teacher_follow_term_is_the_students_full_loss_with_roles_swapped(data, tmp_path):
    from sage_core.train.losses import contrastive_loss, feature_loss, pixel_loss

    distiller = _distiller(data, tmp_path)
    batch = distiller._batch()
    distiller._batch = lambda: batch
    w, heads = distiller.weights, [p.detach().clone() for p in distiller.teacher.heads_out.parameters()]
    with torch.no_grad():
        fused, s_feats = distiller.student.eval().forward_features(batch.y, batch.ir)
        reference, t_feats = distiller._teacher_out(batch)
        pixel = float(pixel_loss(reference, batch.y, batch.ir, fused, w))
        contrast = float(w.contrastive * contrastive_loss(reference, fused, [batch.ir, batch.y],
                                                          [batch.ir_patches, batch.vis_patches], distiller.phi))
        feature = float(feature_loss(s_feats, t_feats, distiller.projections))
    values = distiller.teacher_step()
    assert contrast > 1e-4
    assert values["teacher/follow"] == pytest.approx(0.1 * (pixel + contrast), rel=1e-5)
    assert values["teacher/follow_feature"] == pytest.approx(0.01 * feature, rel=1e-5)
    # The teacher's own 32-channel heads train (through the feature term), with the teacher's optimiser.
    assert any(not torch.equal(a, b) for a, b in zip(heads, distiller.teacher.heads_out.parameters()))


@pytest.mark.parametrize("schedule, student_steps, teacher_steps", [("released", 8, 8), ("full", 4, 4)])
def test_schedules(data, tmp_path, schedule, student_steps, teacher_steps):
    distiller = _distiller(data, tmp_path, **{"optim.schedule": schedule})
    assert distiller.sched_student.T_max == student_steps and distiller.sched_teacher.T_max == teacher_steps
    for _ in range(4):  # each model steps on half of the run's 8 steps
        distiller.opt_student.step()
        distiller.opt_teacher.step()
        distiller.sched_student.step()
        distiller.sched_teacher.step()
    lr_min, teacher_lr = distiller.config.optim.lr_min, distiller.config.optim.teacher_lr
    expected = lr_min + (teacher_lr - lr_min) / 2 if schedule == "released" else lr_min
    assert distiller.opt_teacher.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def labels(data) -> Path:
    """Per-pixel labels for the synthetic training pairs: class 1 in one small square, 255 (ignored) in a band."""
    root = data["base"] / "labels"
    root.mkdir(exist_ok=True)
    for ir_file in sorted((data["train"] / "ir").iterdir()):
        height, width = cv2.imread(str(ir_file), cv2.IMREAD_UNCHANGED).shape[:2]
        label = np.zeros((height, width), np.uint8)
        label[height - 10:height - 4, width - 10:width - 4] = 1
        label[:3] = 255
        cv2.imwrite(str(root / f"{ir_file.stem}.png"), label)
    return root


def _segmentation(labels: Path, **extra) -> dict[str, str]:
    values = {"labels": str(labels), "classes": 2, **extra}
    return {"teacher.segmentation": "{" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"}


def test_segmentation_term_with_our_network_and_crops_around_labels(data, labels, tmp_path):
    distiller = _distiller(data, tmp_path, **{"data.crop": "[32, 32]", **_segmentation(labels)})
    for _ in range(4):  # every crop holds some of the one small labelled square
        crops = distiller.sampler.sample(4)
        assert all(bool((label == 1).any()) for label in crops["labels"])
    before = [p.detach().clone() for p in distiller.segmentation.net.parameters()]
    values = distiller.teacher_step()
    assert values["teacher/segmentation"] > 0 and np.isfinite(values["teacher/loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, distiller.segmentation.net.parameters()))


def test_segmentation_term_with_a_torchscript_model(data, labels, tmp_path):
    model_file = tmp_path / "seg.pt"
    torch.jit.script(torch.nn.Conv2d(3, 2, 3, padding=1)).save(str(model_file))
    distiller = _distiller(data, tmp_path, **_segmentation(labels, model=model_file))
    frozen = [p.detach().clone() for p in distiller.segmentation.net.parameters()]
    teacher = [p.detach().clone() for p in distiller.teacher.parameters()]
    values = distiller.teacher_step()
    assert values["teacher/segmentation"] > 0
    assert all(torch.equal(a, b) for a, b in zip(frozen, distiller.segmentation.net.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(teacher, distiller.teacher.parameters()))


@pytest.mark.parametrize("extra, message", [
    ({"sam.keep": "40"}, "sam.keep: expected the number of masks kept per image, 1..32"),
    ({"teacher.patches": "21"}, "teacher.patches: expected 1..sam.keep (20)"),
    ({"optim.schedule": "cosine"}, "optim.schedule 'cosine'; expected one of released, full"),
    ({"teacher.segmentation": "{labels: /no/such/labels, classes: 2}"}, "teacher.segmentation.labels: /no/such"),
    ({"teacher.segmentation.weight": "0.3", "teacher.segmentation.labels": "."},
     "teacher.segmentation.classes: expected the number of classes"),
    ({"teacher.segmentation": "{labels: ., classes: 2, model: /no/model.pt}"}, "teacher.segmentation.model"),
])
def test_bad_method_settings_are_refused_with_their_key(data, tmp_path, extra, message):
    with pytest.raises(ConfigError) as caught:
        load_config(SMOKE, smoke_overrides(data, tmp_path, **extra))
    assert message in str(caught.value)


def test_bad_labels_are_named(data, labels, tmp_path):
    bad = tmp_path / "bad_labels"
    bad.mkdir()
    for label in labels.iterdir():
        image = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
        image[20, 20] = 7
        cv2.imwrite(str(bad / label.name), image)
    with pytest.raises(ConfigError, match="teacher.segmentation.classes: .* holds class 7"):
        _distiller(data, tmp_path, **_segmentation(bad))
    (bad / labels.iterdir().__next__().name).unlink()
    with pytest.raises(ConfigError, match="teacher.segmentation.labels: no readable label"):
        _distiller(data, tmp_path, **_segmentation(bad))


EVALUATION_SETS = ("tno25", "roadscene221", "m3fd_sage6")


@pytest.mark.parametrize("config_file", sorted((REPO / "training" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_no_training_config_trains_or_validates_on_an_evaluation_set(config_file):
    import yaml

    tree = yaml.safe_load(config_file.read_text()) or {}
    data_section = tree.get("data", {})
    if "detector" in tree:  # training/train_detection.py: sources with splits, chosen on msrs180's val split
        sources = [{"path": s} if isinstance(s, str) else s for s in data_section["train"] + data_section["val"]]
        assert not [s for s in sources if any(name in s["path"] for name in EVALUATION_SETS)], sources
        assert all(s.get("split") in ("train", "val") for s in sources if "msrs180" in s["path"]), sources
        return
    used = [str(f) for f in data_section.get("train", [])] + [str(data_section.get("val") or "")]
    assert not [f for f in used if any(name in f for name in EVALUATION_SETS)], used
    assert data_section.get("holdout", 0) > 0  # validation on the training data's held-out end
