"""Validation of detector-in-the-loop training: AP50 on a labelled validation split, fusion metrics beside the average.

Each validation fuses the split's pairs with the model as the product does (``Fuser``, BGR uint8), runs the
downstream benchmark's detector on them in PyTorch (``TorchCenterNet``: the same detections as TF.js), decodes
as the benchmark does and scores AP50 for person and car on all, day and night images, against the split's
``fusion`` labels and the ``infrared+visible`` union. The references (visible, thermal, the plain average) are
scored once. VIF, Qabf, SSIM and MI of the model and of the average on the first :data:`METRIC_PAIRS` pairs say
whether the model is still a fusion (the issue's bar: VIF, Qabf, MI at least the average's, SSIM at least 0.97
of it). Selection uses ``fusion`` AP50, person + car, all images.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from sage_core.errors import ConfigError
from sage_core.eval.detection import PooledMatches, load_yolo_labels, match_image, postprocess, union_labels
from sage_core.eval.metrics import all_metrics
from sage_core.train.detection_data import SourceSpec, source_frames

CLASSES = ("person", "car")
SUBSETS = ("all", "day", "night")
REFERENCES = ("visible", "thermal", "average")
FUSION_METRICS = ("VIF", "Qabf", "SSIM", "MI")
METRIC_PAIRS = 12


def benchmark_views(ir: np.ndarray, vis: np.ndarray) -> dict[str, np.ndarray]:
    """The benchmark's reference inputs as BGR uint8: visible, thermal as gray, the per-channel average."""
    thermal = cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR)
    return {"visible": vis, "thermal": thermal, "average": cv2.addWeighted(vis, 0.5, thermal, 0.5, 0)}


def _labels(spec: SourceSpec, stem: str, shape: tuple[int, int], label_set: str) -> dict[str, dict]:
    root = Path(spec.path) / "labels"
    h, w = shape
    load = {s: load_yolo_labels(root / s / f"{stem}.txt", w, h) for s in (label_set, "infrared", "visible")}
    return {label_set: load[label_set], "infrared+visible": union_labels(load["infrared"], load["visible"])}


class Validator:
    """Scores a model on the validation sources; see the module docstring."""

    def __init__(self, specs: list[SourceSpec], label_set: str, detector_json: Path, progress: bool = True) -> None:
        from sage_core.eval.centernet import TorchCenterNet

        self.pairs, self.truth, self.night = [], [], []
        for spec in specs:
            if not (Path(spec.path) / "labels" / label_set).is_dir():
                raise ConfigError(f"data.val: {spec.path} has no labels/{label_set} (validation scores AP50)")
            for name, ir, vis in source_frames(spec):
                stem = name.rsplit("/", 1)[-1]
                self.pairs.append((name, ir, vis))
                self.truth.append(_labels(spec, stem, ir.shape, label_set))
                self.night.append(stem.endswith("N"))
        self.label_sets = (label_set, "infrared+visible")
        self.progress = progress
        self.detector = TorchCenterNet(detector_json)
        views = [benchmark_views(ir, vis) for _, ir, vis in self.pairs]
        self.reference_scores = {m: self._ap([v[m] for v in views]) for m in REFERENCES}
        self.average_metrics = self._metrics([v["average"] for v in views])

    def _subset(self, which: str) -> list[int]:
        return [i for i, night in enumerate(self.night) if which == "all" or night == (which == "night")]

    def _ap(self, frames: list[np.ndarray]) -> dict[str, float]:
        dets = [postprocess(self.detector(frame)) for frame in tqdm(frames, desc="validation detections", unit="img",
                                                                    leave=False, disable=not self.progress)]
        scores = {}
        for label_set in self.label_sets:
            for cls in CLASSES:
                for which in SUBSETS:
                    chosen = self._subset(which)
                    pool = PooledMatches([match_image(*dets[i][cls], self.truth[i][label_set][cls]) for i in chosen])
                    scores[f"{label_set}/{cls}/{which}"] = float(pool.average_precision())
        return scores

    def _metrics(self, frames: list[np.ndarray]) -> dict[str, float]:
        values = [all_metrics(f, ir, vis, FUSION_METRICS) for f, (_, ir, vis) in zip(frames, self.pairs[:METRIC_PAIRS])]
        return {name: float(np.mean([v[name] for v in values])) for name in FUSION_METRICS}

    def score(self, model) -> dict:
        """AP50 of ``model``'s frames, its differences to the references, its fusion metrics against the average's."""
        from sage_core.fuser import Fuser

        fuser = Fuser(model, device="cpu")
        frames = [fuser.fuse(ir, vis) for _, ir, vis in self.pairs]
        ap = self._ap(frames)
        metrics = self._metrics(frames)
        main = self.label_sets[0]
        record = {"ap": ap, "selection": ap[f"{main}/person/all"] + ap[f"{main}/car/all"],
                  "minus_average": {k: v - self.reference_scores["average"][k] for k, v in ap.items()},
                  "metrics": metrics, "metrics_over_average": {k: metrics[k] / self.average_metrics[k]
                                                               for k in FUSION_METRICS}}
        ratios = record["metrics_over_average"]
        record["still_a_fusion"] = bool(min(ratios["VIF"], ratios["Qabf"], ratios["MI"]) >= 1.0
                                        and ratios["SSIM"] >= 0.97)
        return record
