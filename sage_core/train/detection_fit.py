"""Detector-in-the-loop training of a model with a chroma output, cheap enough for a 2-core CPU.

    python training/train_detection.py --config training/configs/detection_fuse.yaml --out runs/det

What makes a step cheap (docs/downstream.md has the numbers):

1. the frozen detector's outputs on each camera come from :mod:`~sage_core.train.detection_targets`, computed
   once per image and window: a step runs the detector once, on the fused windows, with gradients;
2. windows at the detector's own scale (256x256 of its 512x512 input) instead of whole frames resized to it;
   the loss ignores the cells along window edges inside the frame (``detector.border``);
3. the windows of a step go through the detector as one batch, in the compiled NCHW form of the graph
   (``eval/tfjs_compiled.py``, channels-last);
4. only the native pixels a window reads are fused: the model's coefficients on the whole pooled frame, then
   upsampled and applied on the window's region (``detector_windows.py``);
5. the model starts as exactly the plain per-channel average (``models/chroma_fuse.py``), so every move away
   from it has to lower the detector's loss.

The loss of a step: ``loss.detection`` x the detection term of ``teacher.detection`` (soft-target focal loss of
the fused windows' heat-maps against the cameras' ``max``, per target object, plus the relative box-size term)
+ ``loss.anchor`` x the L1 distance of the luminance and the chroma gain to the average's (0: off).
Every ``data.val_every`` steps the model is scored (``detection_validation.py``) and saved.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sage_core.checkpoint import load_model, save_checkpoint
from sage_core.errors import ConfigError, SageError
from sage_core.models import FusionModel, build_model
from sage_core.train.detection import DetectionTargets, heatmap_loss, size_loss
from sage_core.train.detection_data import TrainingImage, load_images
from sage_core.train.detection_fit_config import FitConfig, sources
from sage_core.train.detection_targets import TargetCache, TargetSettings, WindowDetector
from sage_core.train.detector_windows import WindowGeometry, resize_window, upsample_region, window_geometry
from sage_core.train.segmentation import colourise


def compose_window(model_low: torch.Tensor, planes: dict[str, torch.Tensor],
                   geometry: WindowGeometry) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One window of the published frame: coefficients ``(1, 4, h, w)`` (a, b, c, chroma gain) on the pooled grid and
    the region's planes -> (RGB 0..255 ``(1, 3, S, S)`` as the detector sees it, fused luminance, chroma gain)."""
    coefficients = upsample_region(model_low, geometry)
    fused = coefficients[:, 0:1] * planes["y"] + coefficients[:, 1:2] * planes["ir"] + coefficients[:, 2:3]
    gain = coefficients[:, 3:4]
    rgb = colourise(fused, 0.5 + gain * (planes["cr"] - 0.5), 0.5 + gain * (planes["cb"] - 0.5))
    return resize_window(rgb * 255.0, geometry), fused, gain


def build_student(c: FitConfig) -> FusionModel:
    model = load_model(c.model.init)[0] if c.model.init else build_model(c.model.arch, c.model.config)
    if not (model.chroma_output and hasattr(model, "from_pooled")):
        raise ConfigError(f"model.arch: {model.arch} has no chroma output on a pooled grid; this training takes "
                          "affine_chroma_fuse")
    return model.to(memory_format=torch.channels_last).train()  # oneDNN's convolutions: 2x faster here than NCHW


class DetectionFit:
    """The training run: data and targets loaded once, then :meth:`run` (see the module docstring)."""

    def __init__(self, config: FitConfig, out: Path, progress: bool = True) -> None:
        self.config, self.out, self.progress = config, Path(out), progress
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.run.seed)
        self.rng = np.random.default_rng(config.run.seed)
        self.model = build_student(config)
        d = config.detector
        self.detector = WindowDetector(d.detector, d.classes)
        self.cache = TargetCache(d.cache_dir, self.detector, TargetSettings(d.window, d.stride, d.targets, d.min_score))
        self.images = load_images(sources(config.data.train, "data.train"), self.cache, self.model.scale, d.border,
                                  d.peak_score, progress)
        self.validator = None
        if config.data.val:
            from sage_core.train.detection_validation import Validator

            self.validator = Validator(sources(config.data.val, "data.val"), config.data.val_labels, self.detector.path,
                                       progress)
        weights = [1.0 + config.optim.window_weight * np.minimum(image.objects, 4) for image in self.images]
        self.window_weights = weights
        image_weights = np.array([w.sum() for w in weights])
        self.image_p = image_weights / image_weights.sum()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optim.lr)
        steps, low = config.optim.steps, config.optim.lr_min / config.optim.lr
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        self._geometry: dict[tuple, WindowGeometry] = {}
        self.step, self.history, self.timing = 0, [], []

    def geometry(self, image: TrainingImage, k: int) -> WindowGeometry:
        key = (image.shape, tuple(image.pooled.shape[2:]), k)
        if key not in self._geometry:
            self._geometry[key] = window_geometry(image.shape, tuple(image.pooled.shape[2:]),
                                                  self.detector.input_size, image.targets.windows[k])
        return self._geometry[key]

    def sample(self) -> list[tuple[TrainingImage, np.ndarray]]:
        """``optim.images`` distinct images, each with ``batch / images`` distinct windows, drawn by weight."""
        o = self.config.optim
        chosen = self.rng.choice(len(self.images), size=o.images, replace=False, p=self.image_p)
        picks = []
        for i in chosen:
            w = self.window_weights[i]
            count = min(o.batch // o.images, len(w))
            picks.append((self.images[i], self.rng.choice(len(w), size=count, replace=False, p=w / w.sum())))
        return picks

    def losses(self, picks: list[tuple[TrainingImage, np.ndarray]]) -> dict[str, torch.Tensor]:
        """The step's loss terms on the sampled windows (see the module docstring)."""
        c = self.config
        frames, heat, sizes, kept, anchors = [], [], [], [], []
        for image, ks in picks:
            low, _ = self.model.from_pooled(image.pooled.contiguous(memory_format=torch.channels_last))
            for k in ks:
                geometry = self.geometry(image, int(k))
                planes = image.region(*geometry.region)
                frame, fused, gain = compose_window(low, planes, geometry)
                frames.append(frame)
                if c.loss.anchor > 0:
                    average = (planes["y"] + planes["ir"]) / 2
                    anchors.append((fused - average).abs().mean() + (gain - 0.5).abs().mean())
                heat.append(torch.from_numpy(image.targets.heat[k]).float())
                sizes.append(torch.from_numpy(image.targets.sizes[k]).float())
                kept.append(image.kept[k])
        output = self.detector(torch.cat(frames))
        target_heat, mask = torch.stack(heat), torch.stack(kept)[:, None]
        peaks = (target_heat == F.max_pool2d(target_heat, 3, stride=1, padding=1)) & (
            target_heat >= c.detector.peak_score) & (mask > 0)
        targets = DetectionTargets(target_heat, peaks, torch.stack(sizes))
        terms = {"heatmap": heatmap_loss(output.heatmap, target_heat, c.detector.loss, c.detector.gamma,
                                         int(peaks.sum()), mask)}
        if c.detector.size_weight > 0:
            terms["size"] = size_loss(output.sizes, targets)
        if anchors:
            terms["anchor"] = torch.stack(anchors).mean()
        return terms

    def train_step(self) -> dict[str, float]:
        c = self.config
        started = time.perf_counter()
        terms = self.losses(self.sample())
        loss = c.loss.detection * (terms["heatmap"] + c.detector.size_weight * terms.get("size", 0.0))
        loss = loss + c.loss.anchor * terms.get("anchor", 0.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.step += 1
        self.timing.append(time.perf_counter() - started)
        values = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
        if not all(math.isfinite(v) for v in values.values()):
            raise SageError(f"step {self.step}: non-finite loss {values}; lower optim.lr")
        return values

    def validate(self) -> dict:
        self.model.eval()
        try:
            scores = self.validator.score(self.model) if self.validator else {}
        finally:
            self.model.train()
        path = save_checkpoint(self.model, self.out / f"step_{self.step:06d}.pt",
                               meta={"step": self.step, "validation": scores, "trainer": "detection_fit"})
        record = {"step": self.step, "checkpoint": path.name, **scores}
        self.history.append(record)
        return record

    def run(self) -> dict:
        """Train ``optim.steps`` steps, validating every ``data.val_every`` and at the start and the end."""
        c = self.config
        log = (self.out / "log.jsonl").open("a")
        started = time.perf_counter()
        try:
            self._log(log, {"validation": self.validate()})
            running: list[dict] = []
            for _ in tqdm(range(c.optim.steps), desc="detection fit", unit="step", disable=not self.progress):
                running.append(self.train_step())
                if self.step % c.run.log_every == 0:
                    means = {k: float(np.mean([r.get(k, np.nan) for r in running])) for k in running[-1]}
                    self._log(log, {"step": self.step, "lr": self.schedule.get_last_lr()[0], **means,
                                    "seconds_per_step": float(np.median(self.timing[-c.run.log_every:]))})
                    running = []
                if self.step % c.data.val_every == 0 or self.step == c.optim.steps:
                    self._log(log, {"validation": self.validate()})
        finally:
            log.close()
        return self.summary(time.perf_counter() - started)

    def _log(self, log, record: dict) -> None:
        log.write(json.dumps(record) + "\n")
        log.flush()
        if not self.progress:
            print(json.dumps(record), flush=True)

    def summary(self, seconds: float) -> dict:
        windows = self.config.optim.batch
        median = float(np.median(self.timing)) if self.timing else float("nan")
        summary = {"steps": self.step, "seconds": seconds, "seconds_per_step": median,
                   "seconds_per_1000_windows": 1000 * median / windows, "images": len(self.images),
                   "target_cache": {"hits": self.cache.hits, "misses": self.cache.misses},
                   "validation": self.history, "out": str(self.out)}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
