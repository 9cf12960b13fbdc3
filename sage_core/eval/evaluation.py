"""Evaluation of fusion methods on datasets: metrics per image, summary tables, charts, mosaics.

A method is given as ``NAME=SPEC``:

- a folder of fused images, paired by stem with the dataset (``sage=results/sage``);
- ``weights:PATH``: any checkpoint the product accepts (ours or the released student);
- ``baseline:average|max|gff``: a classical rule through the same colour pipeline.

Methods that fuse here are timed per image, so tables show quality and cost together. The tables,
CSV and charts are written by :mod:`sage_core.eval.reports`. Clip folders (``ir.mp4`` + ``vis.mp4``) are
sequences: :func:`evaluate_sequences` gives each fusing method's temporal stability next to its inputs'.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sage_core.errors import SageError
from sage_core.eval.baselines import make_baseline
from sage_core.eval.metrics import METRICS, all_metrics
from sage_core.eval.temporal import TemporalStability
from sage_core.fuser import Fuser, LuminanceFuser
from sage_core.image_files import IMAGE_EXTENSIONS, ImagePair, dataset_pairs, read_image, read_pair, write_image_atomic
from sage_core.video_files import read_clip
from sage_core.visualize import mosaic


class EvaluationError(SageError):
    """A method spec or dataset that cannot be evaluated; the message says which and why."""


@dataclass
class Method:
    """A named way of getting a fused image for a pair: read from a folder, or fuse now (timed)."""

    name: str
    spec: str
    fuser: LuminanceFuser | None = None
    folder: Path | None = None

    def fused(self, pair: ImagePair, ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, float | None]:
        if self.fuser is not None:
            started = time.perf_counter()
            image = self.fuser.fuse(ir, vis)
            return image, 1000.0 * (time.perf_counter() - started)
        candidates = [self.folder / f"{pair.stem}{ext}" for ext in IMAGE_EXTENSIONS]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise EvaluationError(f"method {self.name}: no fused image for {pair.stem!r} in {self.folder}")
        image = read_image(found)
        if image.shape[:2] != ir.shape[:2]:
            raise EvaluationError(f"method {self.name}: {found} is {image.shape[1]}x{image.shape[0]} but the "
                                  f"sources of {pair.stem!r} are {ir.shape[1]}x{ir.shape[0]}")
        return image, None


def parse_method(text: str, device: str = "auto") -> Method:
    """``NAME=SPEC`` -> Method (see module docstring)."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise EvaluationError(f"method {text!r}: expected NAME=SPEC, SPEC a folder, weights:PATH or "
                              "baseline:average|max|gff")
    if spec.startswith("weights:"):
        return Method(name, spec, fuser=Fuser.from_weights(spec[len("weights:"):], device=device))
    if spec.startswith("baseline:"):
        return Method(name, spec, fuser=make_baseline(spec[len("baseline:"):]))
    folder = Path(spec)
    if not folder.is_dir():
        raise EvaluationError(f"method {name}: {spec} is not a folder of fused images "
                              "(nor weights:PATH / baseline:NAME)")
    return Method(name, spec, folder=folder)


@dataclass
class Results:
    """Per-image rows: dataset, method, image stem, metric values, fusion ms (or None)."""

    rows: list[dict] = field(default_factory=list)

    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r["dataset"] for r in self.rows))

    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    def values(self, dataset: str, method: str, key: str) -> np.ndarray:
        return np.array([r[key] for r in self.rows if r["dataset"] == dataset and r["method"] == method
                         and r[key] is not None], dtype=np.float64)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{dataset: {method: {metric: mean}}}."""
        return {d: {m: {k: float(self.values(d, m, k).mean()) for k in METRICS} for m in self.methods()
                    if self.values(d, m, "EN").size} for d in self.datasets()}


def evaluate(datasets: list[Path], methods: list[Method], mosaic_count: int = 0, out_dir: Path | None = None,
             progress: bool = True) -> Results:
    """Fuse (or read) every pair for every method and compute all metrics; optionally write mosaics."""
    results = Results()
    for folder in datasets:
        pairs = dataset_pairs(folder)
        picks = set(np.linspace(0, len(pairs) - 1, min(mosaic_count, len(pairs))).round().astype(int).tolist()) \
            if mosaic_count > 0 else set()
        for index, pair in enumerate(tqdm(pairs, desc=f"evaluating {folder.name}", unit="img", disable=not progress)):
            ir, vis = read_pair(pair)
            panels = [("thermal", ir), ("visible", vis)]
            for method in methods:
                fused, ms = method.fused(pair, ir, vis)
                results.rows.append({"dataset": folder.name, "method": method.name, "image": pair.stem,
                                     **all_metrics(fused, ir, vis), "ms": ms})
                panels.append((method.name, fused))
            if index in picks and out_dir is not None:
                (out_dir / "mosaics").mkdir(parents=True, exist_ok=True)
                write_image_atomic(out_dir / "mosaics" / f"{folder.name}_{pair.stem}.png", mosaic(panels, height=360))
    return results


def evaluate_sequences(clips: list[Path], methods: list[Method], frames: int | None = None,
                       progress: bool = True) -> dict[str, dict[str, dict[str, float]]]:
    """{clip: {stream: temporal summary}} for the visible and thermal inputs and every method that fuses
    (a folder of fused images has no frame order to follow); the thermal is the second reference, so each
    summary has the two-source flow error too; see :mod:`sage_core.eval.temporal`."""
    fusing = [m for m in methods if m.fuser is not None]
    results = {}
    for folder in clips:
        metric = TemporalStability()
        for ir, vis in tqdm(read_clip(folder, frames), desc=f"sequence {folder.name}", unit="frame",
                            disable=not progress):
            metric.add(vis, {"visible": vis, "thermal": ir, **{m.name: m.fuser.fuse(ir, vis) for m in fusing}},
                       second_reference=ir)
        results[folder.name] = metric.summary()
    return results


def temporal_markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One table per clip: warping error (and its ratio to the visible input's), relative error, flicker,
    and the two-source flow error (and its ratio to the visible's) where the summary has it."""
    lines = []
    for clip, summary in results.items():
        visible = summary["visible"]
        two = "source_flow_error" in visible
        lines += [f"### {clip} (temporal stability, {int(visible['pairs'])} frame pairs)", "",
                  "| stream | warping error | / visible | relative | flicker |"
                  + (" two-source flow | / visible |" if two else ""),
                  "| --- | --- | --- | --- | --- |" + (" --- | --- |" if two else "")]
        for name, s in summary.items():
            row = (f"| {name} | {s['warping_error']:.2f} | {s['warping_error'] / visible['warping_error']:.2f} | "
                   f"{s['relative_error']:.3f} | {s['brightness_flicker']:.3f} |")
            if two:
                row += f" {s['source_flow_error']:.2f} | {s['source_flow_error'] / visible['source_flow_error']:.2f} |"
            lines.append(row)
        lines.append("")
    return "\n".join(lines)
