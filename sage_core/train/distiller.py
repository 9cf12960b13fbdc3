"""SAGE bi-level distillation (method.md): SPA teacher with SAM priors, student on the triplet loss.

Batches alternate between the two levels when the teacher trains (``teacher.kind: spa``):

- lower level, student step: teacher frozen; triplet loss = feature (whole-map cosine against the
  teacher's own 32-channel heads) + pixel (fusion and teacher-following terms) + contrastive
  semantic (SAM features inside each semantic patch: teacher positive, source negative);
- upper level, teacher step: teacher loss (+ the segmentation term when labels are configured)
  + ``follow`` x the student's pixel and contrastive loss with roles swapped + ``follow_feature``
  x the feature loss, pulling the teacher towards outputs the student can reproduce.

``teacher.detection`` (a frozen detector, :mod:`sage_core.train.detection`) adds its term to the
student's step, the teacher's, or both (``applies_to``).

``teacher.kind: sage-official`` uses the released student as a frozen teacher (no SAM),
``teacher.kind: none`` trains the student on the fusion terms alone. One process or many
under ``torchrun`` (gradients all-reduced; gloo on CPU, NCCL on GPU); only rank 0 writes.
Checkpoints and ``--resume`` are in :mod:`sage_core.train.state`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from sage_core.checkpoint import load_model
from sage_core.errors import SageError
from sage_core.eval.metrics import all_metrics
from sage_core.fuser import Fuser
from sage_core.image_files import read_pair
from sage_core.models import FusionModel, SPATeacher, build_model
from sage_core.options import resolve_device
from sage_core.train import state
from sage_core.train.config import DistillConfig, build_section
from sage_core.train.crops import Batch, CropSampler, make_batch
from sage_core.train.data import TeacherOutputCache, load_training_items, mask_cache, training_pairs, validation_pairs
from sage_core.train.detection import DetectionTerm
from sage_core.train.losses import (
    FeatureProjections,
    TripletWeights,
    feature_loss,
    features_match,
    teacher_loss,
    triplet_terms,
)
from sage_core.train.sam_priors import SamFeatures
from sage_core.train.segmentation import LabelSource, SegmentationTerm
from sage_core.train.stability import StabilityTerm

VALIDATION_METRICS = ("VIF", "Qabf", "SSIM", "MI")


def _distributed() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _all_reduce_grads(parameters: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over processes (what DDP does), robust to parameters unused in a step."""
    if world == 1:
        return
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


class Distiller:
    """Everything one training run holds: models, optimisers, data, logging; see module docstring."""

    def __init__(self, config: DistillConfig, out_dir: str | os.PathLike, progress: bool = True) -> None:
        self.config, self.out = config, Path(out_dir)
        self.rank, self.world = _distributed()
        self.progress = progress and self.rank == 0
        self.device = self._init_device()
        torch.manual_seed(config.run.seed)
        self.weights = build_section(TripletWeights, config.loss.triplet, "loss.triplet")
        self._build_models()  # errors here come before any data loading or training
        self._build_data()
        self._build_optimisers()
        self.step = 0
        self.history: list[dict] = []
        self.timing = {"student": [], "teacher": []}
        self.writer = None

    # ----- set-up -----------------------------------------------------------------------------------

    def _init_device(self) -> torch.device:
        device = resolve_device(self.config.run.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return device

    def _build_models(self) -> None:
        c = self.config
        self.student = (load_model(c.student.init)[0] if c.student.init
                        else build_model(c.student.arch, c.student.config)).to(self.device)
        self.teacher: FusionModel | None = None
        if c.teacher.kind == "spa":
            self.teacher = (load_model(c.teacher.checkpoint)[0] if c.teacher.checkpoint else
                            SPATeacher(c.teacher.width, c.teacher.patches, c.teacher.heads, c.teacher.pool))
        elif c.teacher.kind == "sage-official":
            self.teacher = load_model(c.teacher.checkpoint)[0].eval().requires_grad_(False)
        if self.teacher is not None:
            self.teacher.to(self.device)
        self.phi = self.cache = None
        if c.teacher.kind == "spa":
            self.cache = mask_cache(c)
            self.phi = SamFeatures(self.cache.sam, c.sam.feature_blocks).to(self.device)
        seg = c.teacher.segmentation
        self.segmentation = SegmentationTerm(seg, self.device) if seg.enabled else None
        det = c.teacher.detection
        self.detection = DetectionTerm(det, self.device) if det.enabled else None
        stab = c.loss.stability
        self.stability = StabilityTerm(stab, c.run.seed + self.rank) if stab.enabled else None

    def _build_data(self) -> None:
        """Each process loads its shard of the training images; the frozen teacher's outputs are cached."""
        c = self.config
        self.teacher_outputs = None
        if c.teacher.kind == "sage-official" and c.teacher.output_cache:
            self.teacher_outputs = TeacherOutputCache(c.teacher.output_cache, self.teacher, c.teacher.checkpoint,
                                                      self.device)
        seg = c.teacher.segmentation
        items, self.train_files = load_training_items(training_pairs(c), tuple(c.data.crop), self.cache,
                                                      self.rank, self.world, self.progress, self.teacher_outputs,
                                                      LabelSource(seg) if seg.enabled else None,
                                                      chroma=c.teacher.detection.enabled)
        # With labels, crops are cut around labelled regions so the segmentation term sees them.
        self.sampler = CropSampler(items, tuple(c.data.crop), seed=c.run.seed + self.rank,
                                   focus="labels" if seg.enabled else None, ignore=seg.ignore_index)
        self.val_pairs = validation_pairs(c)

    def _build_projections(self) -> None:
        """The feature loss compares the student's maps with the teacher's heads one to one (as released);
        a student whose maps do not match them gets 1x1 projections, trained with the student."""
        self.projections = None
        if self.teacher is None or self.teacher_outputs is not None:
            return
        with torch.no_grad():
            probe = torch.zeros(1, 1, 64, 64, device=self.device)
            t_shapes = [f.shape for f in self.teacher.forward_features(probe, probe)[1]]
            s_shapes = [f.shape for f in self.student.forward_features(probe, probe)[1]]
        if not features_match(s_shapes, t_shapes):
            self.projections = FeatureProjections([t[1] for t in t_shapes], [s[1] for s in s_shapes]).to(self.device)

    def _build_optimisers(self) -> None:
        c = self.config
        self._build_projections()
        self.student_params = list(self.student.parameters()) + (list(self.projections.parameters())
                                                                 if self.projections else [])
        # Bi-level: even steps train the student, odd steps the teacher. "released": each schedule spans
        # all steps (each model then ends about halfway down its curve); "full": each spans its own steps.
        bilevel = c.teacher.kind == "spa"
        released = c.optim.schedule == "released"
        student_steps = c.run.steps if released or not bilevel else math.ceil(c.run.steps / 2)
        self.opt_student = torch.optim.Adam(self.student_params, lr=c.optim.student_lr)
        self.sched_student = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt_student, student_steps,
                                                                         eta_min=c.optim.lr_min)
        self.opt_teacher = self.sched_teacher = None
        if bilevel:
            self.opt_teacher = torch.optim.Adam(self.teacher.parameters(), lr=c.optim.teacher_lr)
            self.sched_teacher = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.opt_teacher, c.run.steps if released else max(1, c.run.steps // 2), eta_min=c.optim.lr_min)
        if self.world > 1:  # identical start on every process
            modules = (self.student, self.projections, self.teacher, self.segmentation and self.segmentation.net)
            for module in modules:
                if module is not None:
                    for tensor in module.state_dict().values():
                        dist.broadcast(tensor, 0)

    # ----- one batch --------------------------------------------------------------------------------

    def _batch(self) -> Batch:
        crops = self.sampler.sample(self.config.data.batch_size)
        return make_batch(crops, self.config.teacher.patches, self.config.sam.keep, self.device)

    def _teacher_out(self, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.config.teacher.kind == "spa":  # semantic patches: each source times its K masks
            return self.teacher.forward_features(batch.y, batch.ir, batch.ir_patches, batch.vis_patches)
        return self.teacher.forward_features(batch.y, batch.ir)

    def _patches(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None if batch.ir_patches is None else (batch.ir_patches, batch.vis_patches)

    def student_step(self) -> dict[str, float]:
        batch = self._batch()
        self.student.train()
        reference, t_feats = batch.reference, None
        if self.teacher is not None and reference is None:
            self.teacher.eval()
            with torch.no_grad():
                reference, t_feats = self._teacher_out(batch)
        fused, s_feats = self.student.forward_features(batch.y, batch.ir)
        terms = triplet_terms(fused, reference, batch.y, batch.ir, self._patches(batch), self.phi, self.weights)
        if t_feats is not None:
            terms["feature"] = self.weights.feature * feature_loss(s_feats, t_feats, self.projections)
        if self.detection is not None and self.detection.config.on_student:
            terms["detection"] = self.detection.loss(fused, batch.y, batch.ir, batch.cr, batch.cb)
        if self.stability is not None:
            terms["stability"] = self.stability.loss(self.student, batch.y, batch.ir, fused)
        loss = sum(terms.values())
        self.opt_student.zero_grad(set_to_none=True)
        loss.backward()
        _all_reduce_grads(self.student_params, self.world)
        self.opt_student.step()
        self.sched_student.step()
        return {"student/loss": float(loss.detach()), **{f"student/{k}": float(v.detach()) for k, v in terms.items()}}

    def teacher_step(self) -> dict[str, float]:
        batch = self._batch()
        self.teacher.train()
        self.student.eval()
        with torch.no_grad():
            fused, s_feats = self.student.forward_features(batch.y, batch.ir)
        reference, t_feats = self._teacher_out(batch)
        terms = {"own": teacher_loss(reference, batch.y, batch.ir)}
        if self.segmentation is not None:
            terms["segmentation"] = self.segmentation.loss(reference, batch.cr, batch.cb, batch.labels)
        if self.detection is not None and self.detection.config.on_teacher:
            terms["detection"] = self.detection.loss(reference, batch.y, batch.ir, batch.cr, batch.cb)
        # Follow: the student's loss (contrastive included) with the teacher's output in the student's place.
        follow = triplet_terms(reference, fused, batch.y, batch.ir, self._patches(batch), self.phi, self.weights)
        terms["follow"] = self.config.loss.follow * sum(follow.values())
        terms["follow_feature"] = self.config.loss.follow_feature * feature_loss(s_feats, t_feats, self.projections)
        loss = sum(terms.values())
        self.opt_teacher.zero_grad(set_to_none=True)
        loss.backward()
        _all_reduce_grads(list(self.teacher.parameters()), self.world)
        self.opt_teacher.step()
        self.sched_teacher.step()
        if self.segmentation is not None:
            if self.segmentation.optimiser is not None:
                _all_reduce_grads(list(self.segmentation.net.parameters()), self.world)
            self.segmentation.step()
        self.opt_student.zero_grad(set_to_none=True)  # the projections' gradients from this step are not used
        return {"teacher/loss": float(loss.detach()), **{f"teacher/{k}": float(v.detach()) for k, v in terms.items()}}

    # ----- validation and logging -------------------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Mean VIF, Qabf, SSIM, MI of the student on the held-out images (rank 0)."""
        if not self.val_pairs or self.rank != 0:
            return {}
        fuser = Fuser(copy.deepcopy(self.student), device=self.device)
        totals: dict[str, list[float]] = {k: [] for k in VALIDATION_METRICS}
        for pair in self.val_pairs:
            ir, vis = read_pair(pair)
            for key, value in all_metrics(fuser.fuse(ir, vis), ir, vis, VALIDATION_METRICS).items():
                totals[key].append(value)
        return {f"val/{k}": float(np.mean(v)) for k, v in totals.items()}

    def _log(self, values: dict[str, float]) -> None:
        if self.rank != 0:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tensorboard"))
        for key, value in values.items():
            self.writer.add_scalar(key, value, self.step)

    def _sample_images(self) -> None:
        if self.rank != 0 or self.writer is None:
            return
        batch = self._batch()
        with torch.no_grad():
            panels = [batch.ir, batch.y, self.student(batch.y, batch.ir).clamp(0, 1)]
            if batch.reference is not None:
                panels.append(batch.reference.clamp(0, 1))
            elif self.teacher is not None:
                panels.append(self._teacher_out(batch)[0].clamp(0, 1))
        self.writer.add_images("samples/ir|vis|student|teacher", torch.cat(panels, dim=3), self.step)

    def _parts(self) -> state.RunParts:
        """What a checkpoint holds, built when needed so that it always names the current objects."""
        return state.RunParts(self.out, self.config, self.student, self.teacher, self.projections,
                              self.opt_student, self.sched_student, self.opt_teacher, self.sched_teacher,
                              self.segmentation, self.sampler)

    def save(self, final: bool = False) -> None:
        if self.rank == 0:
            state.save(self._parts(), self.step, self.history, final)

    def resume(self) -> None:
        self.step, self.history = state.resume(self._parts(), self.device)

    # ----- the loop ---------------------------------------------------------------------------------

    def _one_step(self, bar: tqdm) -> None:
        c = self.config
        level = "teacher" if c.teacher.kind == "spa" and self.step % 2 == 1 else "student"
        started = time.perf_counter()
        values = self.teacher_step() if level == "teacher" else self.student_step()
        self.timing[level].append(time.perf_counter() - started)
        self.step += 1
        if not all(math.isfinite(v) for v in values.values()):
            raise SageError(f"step {self.step}: non-finite loss {values}; lower the learning rates")
        bar.update(1)
        bar.set_postfix({k.split("/")[0][0] + ":" + k.split("/")[1]: f"{v:.4f}" for k, v in values.items()
                         if k.endswith("/loss")})
        if self.step % c.run.log_every == 0 or self.step == c.run.steps:
            self._log(values)
        if self.step % c.run.sample_every == 0:
            self._sample_images()
        if self.step % c.data.val_every == 0 or self.step == c.run.steps:
            metrics = self.validate()
            if metrics:
                self._log(metrics)
                self.history.append({"step": self.step, **metrics})
                bar.write(f"step {self.step}: " + ", ".join(f"{k[4:]} {v:.4f}" for k, v in metrics.items()))
        if self.step % c.run.checkpoint_every == 0 and self.step < c.run.steps:
            self.save()

    def run(self) -> dict:
        c = self.config
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(c.to_dict(), sort_keys=False))
        if self.step == 0:
            start = self.validate()
            if start:
                self._log(start)
                self.history.append({"step": 0, **start})
        bar = tqdm(total=c.run.steps, initial=self.step, desc="distilling", unit="step", disable=not self.progress)
        while self.step < c.run.steps:
            self._one_step(bar)
        bar.close()
        self.save(final=True)
        if self.writer is not None:
            self.writer.close()
        return state.write_summary(self.out, steps=self.step, world=self.world, timing=self.timing,
                                   history=self.history, mask_cache=self.cache, write=self.rank == 0)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
