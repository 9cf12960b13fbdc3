"""SAGE bi-level distillation (method.md): SPA teacher with SAM priors, student on the triplet loss.

Batches alternate between the two levels when the teacher trains (``teacher.kind: spa``):

- lower level, student step: teacher frozen; triplet loss = feature (cosine through 1x1
  projections) + pixel (fusion and teacher-following terms) + contrastive semantic
  (SAM features inside each mask: teacher positive, source negative);
- upper level, teacher step: teacher loss + ``follow`` x the student's pixel loss with roles
  swapped + ``follow_feature`` x the feature loss, pulling the teacher towards outputs the
  student can reproduce.

``teacher.kind: sage-official`` uses the released student as a frozen teacher (no SAM),
``teacher.kind: none`` trains the student on the fusion terms alone. One process or many
under ``torchrun`` (gradients all-reduced; gloo on CPU, NCCL on GPU); only rank 0 writes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from sage_core.atomic import atomic_path
from sage_core.checkpoint import file_sha256, load_model, save_checkpoint
from sage_core.color import ir_to_gray, vis_to_luma_chroma
from sage_core.data import dataset_pairs, read_pair
from sage_core.errors import SageError
from sage_core.fuser import Fuser, resolve_device
from sage_core.losses import (FeatureProjections, TripletWeights, contrastive_loss, feature_loss, pixel_loss,
                              teacher_loss)
from sage_core.metrics import all_metrics
from sage_core.models import FusionModel, SPATeacher, build_model
from sage_core.sam_priors import GeneratorSettings, MaskCache, SamFeatures, image_digest, load_sam, sam_inputs
from sage_core.training import CropSampler

TEACHER_KINDS = ("spa", "sage-official", "none")
#: Masks kept per image in memory, as bit planes of one uint8 array.
MASK_PLANES = 8
VALIDATION_METRICS = ("VIF", "Qabf", "SSIM", "MI")


class ConfigError(SageError):
    """A distillation config or override that cannot be used; the message names the key."""


# ----- configuration ------------------------------------------------------------------------------------

@dataclass
class DataConfig:
    train: list = field(default_factory=list)  # folders with ir/ and vis/
    val: str | None = None  # held-out folder, evaluated every val_every steps
    max_images: int | None = None  # per training folder (smoke runs)
    holdout: int = 0  # the last N training pairs are held out for validation (when val is not given)
    crop: list = field(default_factory=lambda: [192, 256])  # H, W
    batch_size: int = 4
    val_every: int = 100
    val_max_images: int = 8


@dataclass
class TeacherConfig:
    kind: str = "spa"
    checkpoint: str | None = None  # sage-official: the released student; spa: optional initial weights
    # sage-official only: run the frozen teacher once per whole training image (cached on disk in this
    # folder) instead of on every crop; much faster on CPU, no crop-border effects. The feature loss
    # needs the teacher's features per crop, so it is off in this mode.
    output_cache: str | None = None
    width: int = 64
    patches: int = 4
    heads: int = 2
    pool: int = 4


@dataclass
class StudentConfig:
    arch: str = "lite_fuse"
    config: dict = field(default_factory=dict)
    init: str | None = None  # checkpoint to start from


@dataclass
class SamConfig:
    variant: str = "vit_b"  # vit_b | vit_l | vit_h | tiny (random weights, tests only)
    checkpoint: str | None = None
    allow_random: bool = False
    cache_dir: str = "runs/sam_cache"
    keep: int = 20
    feature_blocks: int = 2
    generator: dict = field(default_factory=dict)  # GeneratorSettings overrides


@dataclass
class LossConfig:
    triplet: dict = field(default_factory=dict)  # TripletWeights overrides
    follow: float = 0.1
    follow_feature: float = 0.01


@dataclass
class OptimConfig:
    teacher_lr: float = 5e-4
    student_lr: float = 2e-3
    lr_min: float = 1e-5


@dataclass
class RunConfig:
    steps: int = 1000
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    checkpoint_every: int = 500
    sample_every: int = 200


@dataclass
class DistillConfig:
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {values!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join((where + '.' if where else '') + u for u in unknown)}; "
                          f"known: {', '.join(known)}")
    kwargs = {}
    for name, value in values.items():
        spec = known[name]
        default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
        kwargs[name] = _build(type(default), value, f"{where}.{name}".strip(".")) if is_dataclass(default) else value
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: object) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> DistillConfig:
    """YAML file (optional) + ``section.key=value`` overrides (values parsed as YAML) -> checked config."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected section.key=value, e.g. run.steps=20")
        _set_dotted(tree, key.strip(), yaml.safe_load(text))
    config = _build(DistillConfig, tree, "")
    check_config(config)
    return config


def check_config(c: DistillConfig) -> None:
    if c.teacher.kind not in TEACHER_KINDS:
        raise ConfigError(f"teacher.kind {c.teacher.kind!r}; expected one of {', '.join(TEACHER_KINDS)}")
    if c.teacher.kind == "sage-official" and not c.teacher.checkpoint:
        raise ConfigError("teacher.kind sage-official needs teacher.checkpoint (the released student's .pt)")
    if c.teacher.output_cache and c.teacher.kind != "sage-official":
        raise ConfigError("teacher.output_cache is for a frozen teacher (teacher.kind sage-official)")
    if not c.data.train:
        raise ConfigError("data.train: give at least one folder with ir/ and vis/")
    if not (isinstance(c.data.crop, list) and len(c.data.crop) == 2 and all(int(v) >= 16 for v in c.data.crop)):
        raise ConfigError(f"data.crop: expected [H, W] of at least 16 pixels, got {c.data.crop!r}")
    for key, value in (("data.batch_size", c.data.batch_size), ("run.steps", c.run.steps),
                       ("run.checkpoint_every", c.run.checkpoint_every), ("data.val_every", c.data.val_every)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
    if c.sam.variant not in ("vit_b", "vit_l", "vit_h", "tiny"):
        raise ConfigError(f"sam.variant {c.sam.variant!r}; expected vit_b, vit_l, vit_h or tiny")
    if c.teacher.kind == "spa" and c.sam.variant == "tiny" and not c.sam.allow_random:
        raise ConfigError(
            "refusing to train with a randomly initialised SAM (sam.variant tiny): its masks and features carry "
            "no semantics, so the teacher would learn nothing from them. Give sam.variant and sam.checkpoint of a "
            "real SAM, or pass --allow-random-sam (smoke tests only)")
    _build(TripletWeights, c.loss.triplet, "loss.triplet")
    _build(GeneratorSettings, c.sam.generator, "sam.generator")


# ----- data ---------------------------------------------------------------------------------------------

def _pack_masks(masks: np.ndarray) -> np.ndarray:
    """Up to MASK_PLANES masks (largest first) as bit planes of one uint8 H x W array."""
    packed = np.zeros(masks.shape[1:], np.uint8)
    for bit, mask in enumerate(masks[:MASK_PLANES]):
        packed |= mask.astype(np.uint8) << bit
    return packed


def unpack_masks(packed: torch.Tensor, k: int, min_pixels: int = 16) -> torch.Tensor:
    """Packed crops ``(N, 1, h, w)`` -> ``(N, K, h, w)`` float: the first K masks non-empty in each crop,
    padded with all-ones (the unmasked source) when fewer."""
    bits = torch.stack([(packed[:, 0] >> b) & 1 for b in range(MASK_PLANES)], dim=1).float()  # (N, P, h, w)
    out = torch.ones(packed.shape[0], k, *packed.shape[2:])
    for n in range(packed.shape[0]):
        present = [b for b in range(MASK_PLANES) if bits[n, b].sum() >= min_pixels][:k]
        for slot, b in enumerate(present):
            out[n, slot] = bits[n, b]
    return out


def load_training_items(pairs: list, crop: tuple[int, int], cache: MaskCache | None, rank: int = 0, world: int = 1,
                        progress: bool = True, teacher_outputs: TeacherOutputCache | None = None
                        ) -> tuple[list[tuple], list[str]]:
    """(Y, ir[, teacher output][, ir mask bits, vis mask bits]) per image of this process's shard
    (every world-th pair).

    Every image is checked against the crop size before SAM runs on any. SAM masks come from the
    cache, so SAM runs once per image across epochs and runs.
    """
    chosen = pairs[rank::world]
    if not chosen:
        raise ConfigError(f"process {rank} of {world} has no training images ({len(pairs)} in all)")
    images = [read_pair(pair) for pair in chosen]
    small = [p.ir for p, (ir, _) in zip(chosen, images) if ir.shape[0] < crop[0] or ir.shape[1] < crop[1]]
    if small:
        raise ConfigError(f"data.crop: crop {crop[0]}x{crop[1]} (H x W) is larger than {len(small)} training "
                          f"image(s), the first {small[0]}")
    items = []
    for ir, vis in tqdm(images, desc="preparing training pairs" + (" + SAM masks" if cache else ""), unit="pair",
                        disable=not progress):
        planes: tuple = (vis_to_luma_chroma(vis).y, ir_to_gray(ir))
        if teacher_outputs is not None:
            planes += (teacher_outputs.output(*planes),)
        if cache is not None:
            ir8, vis_rgb = sam_inputs(ir, vis)
            planes += (_pack_masks(cache.masks(ir8)), _pack_masks(cache.masks(vis_rgb)))
        items.append(planes)
    return items, [str(p.ir) for p in chosen]


def _all_pairs(config: DistillConfig) -> list:
    pairs = []
    for folder in config.data.train:
        found = dataset_pairs(folder)
        pairs += found[: config.data.max_images] if config.data.max_images else found
    if config.data.holdout and config.data.holdout >= len(pairs):
        raise ConfigError(f"data.holdout {config.data.holdout} leaves no training pairs (there are {len(pairs)})")
    return pairs


def training_pairs(config: DistillConfig) -> list:
    """The training pairs of every data.train folder (at most data.max_images each), minus the holdout."""
    pairs = _all_pairs(config)
    return pairs[: len(pairs) - config.data.holdout] if config.data.holdout else pairs


def validation_pairs(config: DistillConfig) -> list:
    """data.val's pairs, or the held-out end of the training pairs; at most data.val_max_images."""
    if config.data.val:
        pairs = dataset_pairs(config.data.val)
    else:
        pairs = _all_pairs(config)[-config.data.holdout:] if config.data.holdout else []
    return pairs[: config.data.val_max_images]


class TeacherOutputCache:
    """Outputs of a frozen teacher on whole training images, float16 on disk, keyed by teacher and image."""

    def __init__(self, root: str | os.PathLike, teacher: FusionModel, teacher_file: str, device: torch.device):
        self.root = Path(root) / file_sha256(teacher_file)[:16]
        self.root.mkdir(parents=True, exist_ok=True)
        self.teacher, self.device = teacher, device

    def output(self, y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        path = self.root / f"{image_digest(np.stack((y, ir)))}.npy"
        if path.is_file():
            return np.load(path).astype(np.float32)
        with torch.no_grad():
            reference = self.teacher(torch.from_numpy(y)[None, None].to(self.device),
                                     torch.from_numpy(ir)[None, None].to(self.device))[0, 0].float().cpu().numpy()
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, reference.astype(np.float16))
        return reference


def mask_cache(config: DistillConfig) -> MaskCache:
    """The SAM and mask cache a config describes (the same key for mask generation and training)."""
    sam = load_sam(config.sam.variant, config.sam.checkpoint, seed=config.run.seed)
    return MaskCache(config.sam.cache_dir, sam, _build(GeneratorSettings, config.sam.generator, "sam.generator"),
                     keep=config.sam.keep)


# ----- the trainer --------------------------------------------------------------------------------------

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
        c = config
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if resolve_device(c.run.device).type == "cuda" else "gloo")
        self.device = resolve_device(c.run.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.manual_seed(c.run.seed)
        self.weights = _build(TripletWeights, c.loss.triplet, "loss.triplet")

        # Models (errors here come before any data loading or training).
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

        # Data: each process loads its shard of the training images.
        self.teacher_outputs = None
        if c.teacher.kind == "sage-official" and c.teacher.output_cache:
            self.teacher_outputs = TeacherOutputCache(c.teacher.output_cache, self.teacher, c.teacher.checkpoint,
                                                      self.device)
        items, self.train_files = load_training_items(training_pairs(c), tuple(c.data.crop), self.cache,
                                                      self.rank, self.world, self.progress, self.teacher_outputs)
        self.sampler = CropSampler(items, tuple(c.data.crop), seed=c.run.seed + self.rank)
        self.val_pairs = validation_pairs(c)

        # Projections for the feature loss: shapes from one dry run on a small input.
        self.projections = None
        if self.teacher is not None and self.teacher_outputs is None:
            with torch.no_grad():
                probe = torch.zeros(1, 1, 32, 32, device=self.device)
                t_ch = [f.shape[1] for f in self.teacher.forward_features(probe, probe)[1]]
                s_ch = [f.shape[1] for f in self.student.forward_features(probe, probe)[1]]
            self.projections = FeatureProjections(t_ch, s_ch).to(self.device)

        student_params = list(self.student.parameters()) + (list(self.projections.parameters())
                                                            if self.projections else [])
        self.student_params = student_params
        # Bi-level: even steps train the student, odd steps the teacher; each schedule spans its own steps.
        bilevel = c.teacher.kind == "spa"
        student_steps = math.ceil(c.run.steps / 2) if bilevel else c.run.steps
        self.opt_student = torch.optim.Adam(student_params, lr=c.optim.student_lr)
        self.sched_student = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt_student, student_steps,
                                                                         eta_min=c.optim.lr_min)
        self.opt_teacher = self.sched_teacher = None
        if bilevel:
            self.opt_teacher = torch.optim.Adam(self.teacher.parameters(), lr=c.optim.teacher_lr)
            self.sched_teacher = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.opt_teacher, max(1, c.run.steps // 2), eta_min=c.optim.lr_min)
        if self.world > 1:  # identical start on every process
            for module in (self.student, self.projections, self.teacher):
                if module is not None:
                    for tensor in module.state_dict().values():
                        dist.broadcast(tensor, 0)
        self.step = 0
        self.history: list[dict] = []
        self.timing = {"student": [], "teacher": []}
        self.writer = None

    # ----- one batch --------------------------------------------------------------------------------

    def _batch(self):
        """(Y, ir, ir masks, vis masks, cached teacher output); absent parts are None."""
        planes = [t.to(self.device) for t in self.sampler.sample(self.config.data.batch_size)]
        y, ir, rest = planes[0], planes[1], planes[2:]
        reference = rest.pop(0) if self.teacher_outputs is not None else None
        if rest:
            k = self.config.teacher.patches
            return y, ir, unpack_masks(rest[0].cpu(), k).to(self.device), unpack_masks(rest[1].cpu(), k).to(
                self.device), reference
        return y, ir, None, None, reference

    def _teacher_out(self, y, ir, m_ir, m_vis):
        if self.config.teacher.kind == "spa":  # semantic patches: each source times its K masks
            return self.teacher.forward_features(y, ir, ir * m_ir, y * m_vis)
        return self.teacher.forward_features(y, ir)

    def student_step(self) -> dict[str, float]:
        y, ir, m_ir, m_vis, reference = self._batch()
        self.student.train()
        t_feats = None
        if self.teacher is not None and reference is None:
            self.teacher.eval()
            with torch.no_grad():
                reference, t_feats = self._teacher_out(y, ir, m_ir, m_vis)
        fused, s_feats = self.student.forward_features(y, ir)
        terms = {"pixel": pixel_loss(fused, y, ir, reference, self.weights)}
        if t_feats is not None:
            terms["feature"] = self.weights.feature * feature_loss(s_feats, t_feats, self.projections)
        if self.phi is not None and self.weights.contrastive:
            terms["contrastive"] = self.weights.contrastive * contrastive_loss(
                fused, reference, [ir, y], [m_ir, m_vis], self.phi)
        loss = sum(terms.values())
        self.opt_student.zero_grad(set_to_none=True)
        loss.backward()
        _all_reduce_grads(self.student_params, self.world)
        self.opt_student.step()
        self.sched_student.step()
        return {"student/loss": float(loss.detach()), **{f"student/{k}": float(v.detach()) for k, v in terms.items()}}

    def teacher_step(self) -> dict[str, float]:
        y, ir, m_ir, m_vis, _ = self._batch()
        self.teacher.train()
        self.student.eval()
        with torch.no_grad():
            fused, s_feats = self.student.forward_features(y, ir)
        reference, t_feats = self._teacher_out(y, ir, m_ir, m_vis)
        own = teacher_loss(reference, y, ir)
        follow = self.config.loss.follow * pixel_loss(reference, y, ir, fused, self.weights)
        follow_feature = self.config.loss.follow_feature * feature_loss(s_feats, t_feats, self.projections)
        loss = own + follow + follow_feature
        self.opt_teacher.zero_grad(set_to_none=True)
        loss.backward()
        _all_reduce_grads(list(self.teacher.parameters()), self.world)
        self.opt_teacher.step()
        self.sched_teacher.step()
        self.opt_student.zero_grad(set_to_none=True)  # the projections' gradients from this step are not used
        return {"teacher/loss": float(loss.detach()), "teacher/own": float(own.detach()),
                "teacher/follow": float(follow.detach()), "teacher/follow_feature": float(follow_feature.detach())}

    # ----- validation, samples, checkpoints -------------------------------------------------------------

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
        y, ir, m_ir, m_vis, reference = self._batch()
        with torch.no_grad():
            panels = [ir, y, self.student(y, ir).clamp(0, 1)]
            if reference is not None:
                panels.append(reference.clamp(0, 1))
            elif self.teacher is not None:
                panels.append(self._teacher_out(y, ir, m_ir, m_vis)[0].clamp(0, 1))
        self.writer.add_images("samples/ir|vis|student|teacher", torch.cat(panels, dim=3), self.step)

    def save(self, final: bool = False) -> None:
        if self.rank != 0:
            return
        meta = {"step": self.step, "teacher": self.config.teacher.kind, "distill_config": self.config.to_dict(),
                "trained_on": [Path(f).name for f in self.config.data.train]}
        save_checkpoint(self.student, self.out / "last.pt", meta=meta)
        if not final:
            save_checkpoint(self.student, self.out / f"student_step{self.step:06d}.pt", meta=meta)
        if self.config.teacher.kind == "spa":
            save_checkpoint(self.teacher, self.out / "teacher_last.pt", meta=meta)
        state = {
            "step": self.step, "student": self.student.state_dict(),
            "projections": self.projections.state_dict() if self.projections else None,
            "teacher": self.teacher.state_dict() if self.opt_teacher else None,
            "opt_student": self.opt_student.state_dict(), "sched_student": self.sched_student.state_dict(),
            "opt_teacher": self.opt_teacher.state_dict() if self.opt_teacher else None,
            "sched_teacher": self.sched_teacher.state_dict() if self.sched_teacher else None,
            "sampler_rng": json.dumps(self.sampler.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(), "history": json.dumps(self.history),
        }
        with atomic_path(self.out / "state.pt") as tmp:
            torch.save(state, tmp)

    def resume(self) -> None:
        path = self.out / "state.pt"
        if not path.is_file():
            raise ConfigError(f"--resume: {path} not found (nothing to resume in {self.out})")
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.student.load_state_dict(state["student"])
        if self.projections is not None and state["projections"] is not None:
            self.projections.load_state_dict(state["projections"])
        # A resumed run may ask for more steps: keep the schedules' progress, but this run's lengths.
        if self.opt_teacher is not None and state["teacher"] is not None:
            self.teacher.load_state_dict(state["teacher"])
            self.opt_teacher.load_state_dict(state["opt_teacher"])
            length = self.sched_teacher.T_max
            self.sched_teacher.load_state_dict(state["sched_teacher"])
            self.sched_teacher.T_max = length
        self.opt_student.load_state_dict(state["opt_student"])
        length = self.sched_student.T_max
        self.sched_student.load_state_dict(state["sched_student"])
        self.sched_student.T_max = length
        self.sampler.rng.bit_generator.state = json.loads(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.history = json.loads(state["history"])
        self.step = int(state["step"])

    # ----- the loop ---------------------------------------------------------------------------------

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
        bilevel = c.teacher.kind == "spa"
        while self.step < c.run.steps:
            level = "teacher" if bilevel and self.step % 2 == 1 else "student"
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
        bar.close()
        self.save(final=True)
        if self.writer is not None:
            self.writer.close()
        summary = {
            "steps": self.step, "world_size": self.world,
            "seconds_per_step": {k: float(np.median(v)) for k, v in self.timing.items() if v},
            "validation": self.history, "out": str(self.out),
            "mask_cache": {"hits": self.cache.hits, "misses": self.cache.misses} if self.cache else None,
        }
        if self.rank == 0:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
