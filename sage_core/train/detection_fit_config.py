"""The config of detector-in-the-loop training (``training/train_detection.py``): YAML sections as dataclasses.

Every key has a default; an unknown key, or a value out of its range, is refused naming the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sage_core.errors import ConfigError
from sage_core.train.config import build_section, config_tree
from sage_core.train.detection import LOSSES, TARGET_RULES
from sage_core.train.detection_data import SPLITS, SourceSpec


@dataclass
class FitModel:
    arch: str = "affine_chroma_fuse"
    config: dict = field(default_factory=dict)
    init: str | None = None  # a checkpoint to start from; none: the model's own start (the plain average)


@dataclass
class FitDetector:
    detector: str = ""  # centernet:PATH/centernet.json (a TF.js graph)
    classes: list = field(default_factory=lambda: [0, 2, 5, 7])  # COCO person, car, bus, truck
    window: int = 256  # detector pixels; the detector's input is cut into windows of this size ...
    stride: int = 128  # ... at this stride
    border: int = 8  # output cells ignored along a window edge inside the frame
    targets: str = "max"  # max | mean of the two cameras' heat-maps
    min_score: float = 0.05
    peak_score: float = 0.3
    loss: str = "focal"  # focal | bce
    gamma: float = 2.0
    size_weight: float = 0.1
    cache_dir: str = "runs/detector_targets"


@dataclass
class FitData:
    train: list = field(default_factory=list)  # sources: {path, split, every, limit}
    val: list = field(default_factory=list)  # sources scored every val_every steps (msrs180 split val: AP50)
    val_labels: str = "fusion"  # the msrs180 label set validation scores AP50 against
    val_every: int = 500


@dataclass
class FitLoss:
    detection: float = 1.0
    anchor: float = 0.0  # L1 of the luminance and the chroma gain to the plain average's, per pixel


@dataclass
class FitOptim:
    lr: float = 1.0e-3
    lr_min: float = 1.0e-5
    steps: int = 4000
    batch: int = 4  # windows per step
    images: int = 2  # distinct images per step (each gives batch / images windows)
    window_weight: float = 1.0  # a window is drawn with weight 1 + window_weight * min(its objects, 4)


@dataclass
class FitRun:
    seed: int = 0
    log_every: int = 50


@dataclass
class FitConfig:
    model: FitModel = field(default_factory=FitModel)
    detector: FitDetector = field(default_factory=FitDetector)
    data: FitData = field(default_factory=FitData)
    loss: FitLoss = field(default_factory=FitLoss)
    optim: FitOptim = field(default_factory=FitOptim)
    run: FitRun = field(default_factory=FitRun)


def sources(entries: list, key: str) -> list[SourceSpec]:
    """``data.train`` / ``data.val`` entries (a path, or a mapping) -> SourceSpecs, each checked."""
    if not isinstance(entries, list):
        raise ConfigError(f"{key}: expected a list of sources, got {entries!r}")
    specs = []
    for entry in entries:
        spec = build_section(SourceSpec, {"path": entry} if isinstance(entry, str) else entry, key)
        if spec.split not in SPLITS:
            raise ConfigError(f"{key}: {spec.path}: split {spec.split!r}; expected one of {', '.join(SPLITS)}")
        if spec.split == "test" and key == "data.train":
            raise ConfigError(f"{key}: {spec.path}: the test split is never trained on")
        if spec.labels and (key != "data.train" or spec.split != "train"):
            raise ConfigError(f"{key}: {spec.path}: labels are read for training on the train split only "
                              f"(here split {spec.split})")
        specs.append(spec)
    return specs


def _positive(value: object, key: str, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{key}: expected a number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_fit(c: FitConfig) -> None:
    """ConfigErrors naming the key that is wrong."""
    if not c.detector.detector:
        raise ConfigError("detector.detector: required (centernet:PATH/centernet.json)")
    for key, value, choices in (("detector.targets", c.detector.targets, TARGET_RULES),
                                ("detector.loss", c.detector.loss, LOSSES)):
        if value not in choices:
            raise ConfigError(f"{key}: {value!r}; expected one of {', '.join(choices)}")
    d = c.detector
    if d.window % 32 or d.stride % 4 or d.stride > d.window or not 0 <= d.border <= d.window // 16:
        raise ConfigError(f"detector.window/stride/border: {d.window}/{d.stride}/{d.border}; expected a window that is "
                          "a multiple of 32, a stride (multiple of 4) at most the window, a border of 0..window/16 "
                          "cells")
    for key in ("lr", "lr_min", "steps", "batch", "images"):
        _positive(getattr(c.optim, key), f"optim.{key}")
    if c.optim.batch % c.optim.images:
        raise ConfigError(f"optim.batch {c.optim.batch}: expected a multiple of optim.images ({c.optim.images})")
    _positive(c.optim.window_weight, "optim.window_weight", allow_zero=True)
    _positive(c.loss.detection, "loss.detection")
    _positive(c.loss.anchor, "loss.anchor", allow_zero=True)
    _positive(c.data.val_every, "data.val_every")
    if not c.data.train:
        raise ConfigError("data.train: at least one source")
    sources(c.data.train, "data.train")
    sources(c.data.val, "data.val")


def load_fit_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> FitConfig:
    """YAML file + ``section.key=value`` overrides -> a checked :class:`FitConfig`."""
    config = build_section(FitConfig, config_tree(path, overrides), "")
    check_fit(config)
    return config
