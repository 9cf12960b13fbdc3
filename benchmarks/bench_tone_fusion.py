"""Fusion metrics of the default model with each thermal normalisation (issue 23, goal 1: "no worse").

    python benchmarks/bench_tone_fusion.py [--data ../shared/datasets/tno25 --data ...] [--limit 40]

The evaluation sets hold 8-bit thermal. Each thermal image becomes 16-bit raw counts by a known affine
map (``RAW_OFFSET + RAW_GAIN * grey``: a 14-bit camera's kind of range), which is fused through
``FramePipeline`` as the node would (no smoothing: single images, as ``sage-fuse`` does), once per
normalisation (the default for raw streams, plateau since issue 31, marked); the 8-bit thermal as it is (what
the pipeline does with 8-bit thermal, the tone its camera gave it) is the baseline. Every
fused image is scored twice (``sage_core.eval.metrics``): against the dataset's own 8-bit thermal (the same
sources for every row, so a normalisation that renders the thermal differently from the dataset's camera
loses fidelity there) and against the thermal as normalised, the image the model was given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sage_core import Fuser, InferenceOptions
from sage_core.eval.metrics import LOWER_IS_BETTER, METRICS, all_metrics
from sage_core.image_files import dataset_pairs, read_pair
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer, ThermalNormalizerConfig

ROOT = Path(__file__).resolve().parents[1]
DATASETS = [ROOT.parent / "shared" / "datasets" / name for name in ("tno25", "roadscene221")]
RAW_OFFSET, RAW_GAIN = 7000.0, 16.0
NORMALISATIONS = ("8-bit as is", "percentile", "plateau")


def _gray(ir: np.ndarray) -> np.ndarray:
    return ir if ir.ndim == 2 else ir[..., 0]


def score_dataset(folder: Path, fuser: Fuser, limit: int) -> dict[str, dict[str, float]]:
    """{normalisation: {metric: mean}} over up to ``limit`` evenly spaced pairs of one dataset."""
    pairs = dataset_pairs(folder)
    picks = np.unique(np.linspace(0, len(pairs) - 1, min(limit, len(pairs))).round().astype(int))
    pipelines = {name: FramePipeline(fuser, ThermalNormalizer(ThermalNormalizerConfig(name, smoothing=0.0)))
                 for name in NORMALISATIONS[1:]}
    # single images, not a stream: no steadying of the 8-bit thermal between unrelated pictures (as sage-fuse)
    pipelines[NORMALISATIONS[0]] = FramePipeline(fuser, ThermalNormalizer(ThermalNormalizerConfig(steadying=0.0)))
    keys = [f"{name}{against}" for name in NORMALISATIONS for against in ("", " (vs its input)")]
    rows: dict[str, list[dict[str, float]]] = {key: [] for key in keys}
    for index in picks:
        ir, vis = read_pair(pairs[index])
        ir8 = _gray(ir)
        raw = np.rint(RAW_OFFSET + RAW_GAIN * ir8.astype(np.float64)).astype(np.uint16)
        for name in NORMALISATIONS:
            source = ir8 if name == NORMALISATIONS[0] else raw
            fused = pipelines[name].fuse(source, vis)
            rows[name].append(all_metrics(fused, ir8, vis))
            if name != NORMALISATIONS[0]:
                given = np.clip(pipelines[name].thermal_unit(raw) * 255.0 + 0.5, 0, 255).astype(np.uint8)
                rows[f"{name} (vs its input)"].append(all_metrics(fused, given, vis))
    rows = {key: values for key, values in rows.items() if values}
    return {name: {k: float(np.mean([r[k] for r in values])) for k in METRICS} for name, values in rows.items()}


def print_table(folder: str, means: dict[str, dict[str, float]], count: int) -> None:
    print(f"## {folder} ({count} pairs)\n")
    print("| normalisation | " + " | ".join(METRICS) + " | better than percentile |")
    print("| --- | " + " | ".join("---" for _ in METRICS) + " | --- |")
    reference = means["percentile"]
    default = ThermalNormalizerConfig().method
    for name, values in means.items():
        label = name.replace(default, f"{default} (default for raw streams)", 1) if name.startswith(default) else name
        better = sum((values[k] < reference[k]) if k in LOWER_IS_BETTER else (values[k] > reference[k])
                     for k in METRICS)
        print(f"| {label} | " + " | ".join(f"{values[k]:.3f}" for k in METRICS) + f" | {better} / {len(METRICS)} |")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", type=Path, help="dataset folder (repeatable)")
    parser.add_argument("--limit", type=int, default=40, help="pairs per dataset, evenly spaced (default 40)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    fuser = Fuser.from_options(InferenceOptions(device=args.device))
    for folder in args.data or DATASETS:
        means = score_dataset(folder, fuser, args.limit)
        print_table(folder.name, means, min(args.limit, len(dataset_pairs(folder))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
