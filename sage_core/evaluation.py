"""Evaluation of fusion methods on datasets: metrics per image, summary tables, charts, mosaics.

A method is given as ``NAME=SPEC``:

- a folder of fused images, paired by stem with the dataset (``sage=results/sage``);
- ``weights:PATH``: any checkpoint the product accepts (ours or the released student);
- ``baseline:average|max|gff``: a classical rule through the same colour pipeline.

Methods that fuse here are timed per image, so tables show quality and cost together.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sage_core.baselines import make_baseline
from sage_core.data import IMAGE_EXTENSIONS, ImagePair, dataset_pairs, read_image, read_pair, write_image_atomic
from sage_core.errors import SageError
from sage_core.fuser import Fuser, LuminanceFuser
from sage_core.metrics import LOWER_IS_BETTER, METRICS, all_metrics
from sage_core.visualize import mosaic

#: Bar-chart groups (one PNG each).
METRIC_GROUPS = {
    "information": ("EN", "MI", "SCD", "CC"),
    "contrast_detail": ("SD", "SF", "AG"),
    "structure": ("VIF", "Qabf", "SSIM", "MS_SSIM"),
    "error": ("PSNR", "Nabf"),
}


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


# ----- reports ---------------------------------------------------------------------------------------

def write_csv(results: Results, path: Path) -> None:
    columns = ["dataset", "method", "image", *METRICS, "ms"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in results.rows:
            writer.writerow({k: ("" if row[k] is None else (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]))
                             for k in columns})


def write_summary_json(results: Results, path: Path) -> None:
    path.write_text(json.dumps(results.summary(), indent=2) + "\n")


def _number(value: float) -> str:
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}" if abs(value) < 0.1 else f"{value:.3f}"


def summary_markdown(results: Results) -> str:
    """Mean ± std per metric and method, best per column in bold, with each metric's direction."""
    lines = ["Values are means ± standard deviations over the images of each set. ↑: higher is better, "
             "↓: lower is better; the best value of each column is in bold. SSIM and MS-SSIM are sums over the "
             "two sources in the reference convention (images scaled by 255 twice), PSNR uses the reference's "
             "[0, 1] MSE with a 255 peak. ms: fusion time per image on this machine (blank: read from files).", ""]
    for dataset in results.datasets():
        methods = [m for m in results.methods() if results.values(dataset, m, "EN").size]
        count = results.values(dataset, methods[0], "EN").size
        lines += [f"### {dataset} ({count} images)", ""]
        header = ["method"] + [f"{k} {'↓' if k in LOWER_IS_BETTER else '↑'}" for k in METRICS] + ["ms"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        means = {m: {k: results.values(dataset, m, k).mean() for k in METRICS} for m in methods}
        best = {k: (min if k in LOWER_IS_BETTER else max)(means[m][k] for m in methods) for k in METRICS}
        for method in methods:
            cells = [method]
            for key in METRICS:
                values = results.values(dataset, method, key)
                text = f"{_number(values.mean())} ± {_number(values.std())}"
                cells.append(f"**{text}**" if math.isclose(values.mean(), best[key], rel_tol=1e-12) else text)
            ms = results.values(dataset, method, "ms")
            cells.append(f"{ms.mean():.0f}" if ms.size else "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_groups(results: Results, out_dir: Path) -> list[Path]:
    """One bar-chart PNG per metric group: a panel per metric, datasets on x, a bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets, methods = results.datasets(), results.methods()
    written = []
    for group, keys in METRIC_GROUPS.items():
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.0), squeeze=False)
        width = 0.8 / max(len(methods), 1)
        for ax, key in zip(axes[0], keys):
            for i, method in enumerate(methods):
                means = [results.values(d, method, key).mean() if results.values(d, method, key).size else np.nan
                         for d in datasets]
                ax.bar(np.arange(len(datasets)) + (i - (len(methods) - 1) / 2) * width, means, width, label=method)
            ax.set_xticks(np.arange(len(datasets)), datasets, rotation=15)
            ax.set_title(f"{key} ({'lower' if key in LOWER_IS_BETTER else 'higher'} is better)")
            ax.grid(axis="y", alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(methods), 8), fontsize=9, frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        path = out_dir / f"metrics_{group}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_reports(results: Results, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(results, out_dir / "metrics.csv")
    write_summary_json(results, out_dir / "summary.json")
    (out_dir / "summary.md").write_text(summary_markdown(results))
    plot_groups(results, out_dir)
