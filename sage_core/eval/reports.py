"""Reports of an evaluation: per-image CSV, a JSON summary, Markdown tables and bar charts."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from sage_core.eval.evaluation import Results
from sage_core.eval.metrics import LOWER_IS_BETTER, METRICS

#: Bar-chart groups (one PNG each).
METRIC_GROUPS = {
    "information": ("EN", "MI", "SCD", "CC"),
    "contrast_detail": ("SD", "SF", "AG"),
    "structure": ("VIF", "Qabf", "SSIM", "MS_SSIM"),
    "error": ("PSNR", "Nabf"),
}


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
