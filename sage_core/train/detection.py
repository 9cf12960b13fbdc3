"""The detection term (``teacher.detection``): a frozen detector must find on the fused frame whatever it
finds on either camera. Label-free; the detection analogue of SAGE's segmentation term.

Per step, on the batch's crops:

1. targets (no gradient): the detector on the visible crop (its luminance and chroma, as RGB) and on
   the thermal crop (gray repeated to RGB, as the downstream benchmark shows thermal to the detector);
   ``targets: max`` keeps, per cell and class, the larger of the two heat-maps (the union of what
   either camera shows), ``mean`` their average; cells under ``min_score`` become background (0);
2. the fused luminance is recomposed with the visible chroma into the RGB frame the node would
   publish (differentiable, clamped to [0, 1]) and goes through the same detector, with gradients;
3. ``focal`` (default): ``BCE(p, t) * |p - t| ** gamma`` per cell and class (a soft-target focal
   loss: zero where the fused heat-map equals the target, easy background cells count little);
   ``bce``: the binary cross-entropy minus the target's own entropy (also zero at ``p == t``). The
   sum is divided by the number of target objects (3x3 local maxima of at least ``peak_score``, at
   least 1), as CenterNet divides by its objects;
4. where the detector gives box sizes: at those target objects, the L1 distance of the fused
   frame's sizes to the sizes of the camera with the higher score there, divided by the sum of the
   target sizes (a relative error, so the unit does not matter), times ``size_weight``.

The loss is ``weight * (heatmap + size_weight * size)``. ``applies_to`` says whose output it acts on:
``student`` (default: the shipped model is the one that feeds the detector; any teacher kind),
``teacher`` (SAGE's place for its segmentation term: the SPA teacher's step, ``teacher.kind spa``;
the student learns it through distillation), or ``both``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sage_core.errors import ConfigError
from sage_core.train.detectors import KEY, DetectorOutput, detector_kind, load_detector
from sage_core.train.segmentation import colourise

APPLIES_TO = ("student", "teacher", "both")
TARGET_RULES = ("max", "mean")
LOSSES = ("focal", "bce")
_EPS = 1e-6


@dataclass
class DetectionConfig:
    # "" (off) | centernet:PATH/centernet.json | PATH.json (TF.js graph) | PATH.pt / PATH.ts (TorchScript)
    detector: str = ""
    weight: float = 1.0
    applies_to: str = "student"  # student | teacher (teacher.kind spa) | both
    targets: str = "max"  # max | mean of the two cameras' heat-maps
    loss: str = "focal"  # focal | bce
    gamma: float = 2.0  # focal: the exponent of |p - t|
    min_score: float = 0.05  # target cells under this are background
    peak_score: float = 0.3  # a target object: a 3x3 local maximum of at least this score
    size_weight: float = 0.1  # box-size term (when the detector gives sizes); 0: off
    classes: list | None = None  # heat-map channels used (e.g. COCO [0, 2, 5, 7]: person, car, bus, truck)
    input_size: list | None = None  # [H, W]: resize crops to this first (the TF.js graph resizes itself anyway)
    outputs: list | None = None  # [heatmap, sizes] node names (TF.js) or dict keys (TorchScript); None: defaults

    @property
    def enabled(self) -> bool:
        return bool(self.detector)

    @property
    def on_student(self) -> bool:
        return self.enabled and self.applies_to in ("student", "both")

    @property
    def on_teacher(self) -> bool:
        return self.enabled and self.applies_to in ("teacher", "both")


def _number(value: object, key: str, low: float, high: float | None = None, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if open_low else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"{KEY}.{key}: expected a number {bound}, got {value!r}")


def _int_list(value: object, key: str, length: int | None, low: int) -> None:
    ok = isinstance(value, list) and (length is None or len(value) == length) and len(value) > 0
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value)
    if not ok:
        shape = f"[{', '.join(['N'] * length)}]" if length else "a non-empty list"
        raise ConfigError(f"{KEY}.{key}: expected {shape} of integers >= {low}, got {value!r}")


def check_detection(c: DetectionConfig, teacher_kind: str) -> None:
    """ConfigErrors naming the teacher.detection key that is wrong (files are checked, not loaded)."""
    if not c.enabled:
        return
    if not isinstance(c.detector, str):
        raise ConfigError(f"{KEY}.detector: expected a file path (or centernet:PATH), got {c.detector!r}")
    kind, path = detector_kind(c.detector)
    if not path.is_file():
        raise ConfigError(f"{KEY}.detector: {path} not found ({'TF.js graph' if kind == 'tfjs' else 'TorchScript'})")
    for key, choices in (("applies_to", APPLIES_TO), ("targets", TARGET_RULES), ("loss", LOSSES)):
        if getattr(c, key) not in choices:
            raise ConfigError(f"{KEY}.{key}: {getattr(c, key)!r}; expected one of {', '.join(choices)}")
    if c.on_teacher and teacher_kind != "spa":
        raise ConfigError(f"{KEY}.applies_to {c.applies_to}: the teacher only trains with teacher.kind spa "
                          f"(here {teacher_kind}); use applies_to: student")
    _number(c.weight, "weight", 0.0, open_low=True)
    _number(c.gamma, "gamma", 0.0)
    _number(c.min_score, "min_score", 0.0, 1.0)
    _number(c.peak_score, "peak_score", 0.0, 1.0, open_low=True)
    _number(c.size_weight, "size_weight", 0.0)
    if c.classes is not None:
        _int_list(c.classes, "classes", None, 0)
    if c.input_size is not None:
        _int_list(c.input_size, "input_size", 2, 8)
    if c.outputs is not None and not (isinstance(c.outputs, list) and 1 <= len(c.outputs) <= 2
                                      and all(isinstance(o, str) and o for o in c.outputs)):
        raise ConfigError(f"{KEY}.outputs: expected [heatmap] or [heatmap, sizes] names, got {c.outputs!r}")


@dataclass
class DetectionTargets:
    """Label-free targets of one batch: ``heatmap`` (N, C, h, w), ``peaks`` (N, C, h, w) bool (the
    target objects), ``sizes`` (N, K, h, w) of the more confident camera, or None."""

    heatmap: torch.Tensor
    peaks: torch.Tensor
    sizes: torch.Tensor | None


def combine_targets(visible: DetectorOutput, thermal: DetectorOutput, rule: str, min_score: float,
                    peak_score: float) -> DetectionTargets:
    """The two cameras' detector outputs -> targets (see the module docstring)."""
    heat = torch.maximum(visible.heatmap, thermal.heatmap) if rule == "max" else (
        visible.heatmap + thermal.heatmap) / 2
    heat = torch.where(heat >= min_score, heat, torch.zeros_like(heat))
    local_max = F.max_pool2d(heat, 3, stride=1, padding=1)
    peaks = (heat == local_max) & (heat >= peak_score)
    sizes = None
    if visible.sizes is not None and thermal.sizes is not None:
        visible_wins = visible.heatmap.amax(1, keepdim=True) >= thermal.heatmap.amax(1, keepdim=True)
        sizes = torch.where(visible_wins, visible.sizes, thermal.sizes)
    return DetectionTargets(heat, peaks, sizes)


def heatmap_loss(p: torch.Tensor, t: torch.Tensor, kind: str, gamma: float, objects: int,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-target focal or relative BCE of heat-map ``p`` against target ``t``, summed (over the cells where
    ``mask``, broadcast, is 1), per object."""
    p = p.clamp(_EPS, 1.0 - _EPS)
    bce = -(t * torch.log(p) + (1.0 - t) * torch.log1p(-p))
    if kind == "focal":
        per_cell = bce * (p - t).abs().pow(gamma)
    else:  # minus the target's entropy: the same gradient, and zero at p == t
        tc = t.clamp(_EPS, 1.0 - _EPS)
        per_cell = bce + (tc * torch.log(tc) + (1.0 - tc) * torch.log1p(-tc))
    if mask is not None:
        per_cell = per_cell * mask
    return per_cell.sum() / max(objects, 1)


def size_loss(sizes: torch.Tensor | None, targets: DetectionTargets) -> torch.Tensor | None:
    """Relative L1 of the fused frame's box sizes at the target objects; None when there are no sizes."""
    if sizes is None or targets.sizes is None:
        return None
    cells = targets.peaks.any(1, keepdim=True).expand_as(sizes)
    if not bool(cells.any()):
        return sizes.sum() * 0.0  # no object in these crops: no term, graph kept
    target = targets.sizes[cells]
    return (sizes[cells] - target).abs().sum() / (target.abs().sum() + _EPS)


class DetectionTerm:
    """``weight * (heatmap + size_weight * size)`` of a frozen detector on the fused frame; see module doc."""

    def __init__(self, config: DetectionConfig, device: torch.device) -> None:
        self.config = config
        size = tuple(config.input_size) if config.input_size else None
        self.detector = load_detector(config.detector, config.outputs, size, config.classes, device)

    def targets(self, y: torch.Tensor, ir: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> DetectionTargets:
        """The detector on each camera's crop (no gradient) -> this batch's targets."""
        c = self.config
        with torch.no_grad():
            visible = self.detector(colourise(y, cr, cb))
            thermal = self.detector(ir.clamp(0.0, 1.0).expand(-1, 3, -1, -1))
        return combine_targets(visible, thermal, c.targets, c.min_score, c.peak_score)

    def parts(self, fused_y: torch.Tensor, targets: DetectionTargets, cr: torch.Tensor,
              cb: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted ``heatmap`` (and ``size``) terms of the fused luminance against ``targets``."""
        c = self.config
        output = self.detector(colourise(fused_y, cr, cb))
        objects = int(targets.peaks.sum())
        parts = {"heatmap": heatmap_loss(output.heatmap, targets.heatmap, c.loss, c.gamma, objects)}
        size = size_loss(output.sizes, targets) if c.size_weight > 0 else None
        if size is not None:
            parts["size"] = size
        return parts

    def loss(self, fused_y: torch.Tensor, y: torch.Tensor, ir: torch.Tensor, cr: torch.Tensor,
             cb: torch.Tensor) -> torch.Tensor:
        """The weighted term for fused luminance ``fused_y`` (N, 1, h, w) of the crops ``y``, ``ir``, ``cr``, ``cb``."""
        parts = self.parts(fused_y, self.targets(y, ir, cr, cb), cr, cb)
        return self.config.weight * (parts["heatmap"] + self.config.size_weight * parts.get("size", 0.0))
