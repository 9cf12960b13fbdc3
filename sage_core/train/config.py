"""The distillation config: YAML sections as dataclasses, ``section.key=value`` overrides, checks.

Every key has a default here; a config file or override naming an unknown key is refused with the
list of known keys, so a typo never silently trains with a default.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import yaml

from sage_core.errors import ConfigError
from sage_core.train.detection import DetectionConfig, check_detection
from sage_core.train.losses import TripletWeights
from sage_core.train.sam_priors import GeneratorSettings
from sage_core.train.segmentation import SegmentationConfig, check_segmentation
from sage_core.train.stability import StabilityConfig, check_stability

TEACHER_KINDS = ("spa", "sage-official", "none")
SCHEDULES = ("released", "full")
#: The most SAM masks per image training can pack (bit planes of one 32-bit integer).
MAX_MASK_PLANES = 32


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
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)  # off unless labels are given
    detection: DetectionConfig = field(default_factory=DetectionConfig)  # off unless a detector is given


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
    stability: StabilityConfig = field(default_factory=StabilityConfig)  # off unless its weight is set


@dataclass
class OptimConfig:
    teacher_lr: float = 5e-4
    student_lr: float = 2e-3
    lr_min: float = 1e-5
    # released: each cosine schedule spans all steps while each model steps on half of them, so in a
    # bi-level run each learning rate ends about halfway down (as in the released run); full: each
    # schedule spans its own model's steps and ends at lr_min.
    schedule: str = "released"


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


def build_section(cls, values: dict, where: str):
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
        nested = is_dataclass(default)
        kwargs[name] = build_section(type(default), value, f"{where}.{name}".strip(".")) if nested else value
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
    config = build_section(DistillConfig, config_tree(path, overrides), "")
    check_config(config)
    return config


def config_tree(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict:
    """A YAML config file (optional) with ``section.key=value`` overrides applied, as a plain tree."""
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
    return tree


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
    if c.optim.schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule {c.optim.schedule!r}; expected one of {', '.join(SCHEDULES)}")
    _check_masks(c)
    if c.teacher.segmentation.enabled and c.teacher.kind != "spa":
        raise ConfigError("teacher.segmentation is a term of the SPA teacher's loss (teacher.kind spa)")
    check_segmentation(c.teacher.segmentation)
    check_detection(c.teacher.detection, c.teacher.kind)
    check_stability(c.loss.stability, c.data.crop)
    build_section(TripletWeights, c.loss.triplet, "loss.triplet")
    build_section(GeneratorSettings, c.sam.generator, "sam.generator")


def _check_masks(c: DistillConfig) -> None:
    """The masks kept per image (sam.keep) are what training packs and picks the K patches from."""
    if not isinstance(c.sam.keep, int) or not 1 <= c.sam.keep <= MAX_MASK_PLANES:
        raise ConfigError(f"sam.keep: expected the number of masks kept per image, 1..{MAX_MASK_PLANES}, "
                          f"got {c.sam.keep!r}")
    if not isinstance(c.teacher.patches, int) or not 1 <= c.teacher.patches <= c.sam.keep:
        raise ConfigError(f"teacher.patches: expected 1..sam.keep ({c.sam.keep}) semantic patches per modality, "
                          f"got {c.teacher.patches!r}")
