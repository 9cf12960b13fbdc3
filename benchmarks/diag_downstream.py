"""Why does the plain average beat our fusion for the detector? Colour/luminance variants on a split of msrs180.

    python benchmarks/diag_downstream.py --split even            # diagnose on the even-indexed pairs
    python benchmarks/diag_downstream.py --split odd --variants visible thermal average "ours" \
        --model-file-path my.pt                                   # report once on the odd-indexed pairs

Each variant recomposes a frame in OpenCV's YCrCb from a luminance (ours = the shipped model's fused Y, avg =
(Y + thermal) / 2, thermal) and a chroma (the visible chroma times a gain about 128: 1 = the node's colour
pipeline, 0.5 = what the per-channel average does to colour, 0 = gray). "matched" rescales our Y per image to
the mean and standard deviation of the average's Y (a contrast-matched luminance with our structure). The
detector, decoding, AP50 and paired bootstrap are bench_downstream's (same TF.js CenterNet, same cache layout).
Splits: pairs sorted by name, ``even`` = indices 0, 2, 4, ..., ``odd`` = 1, 3, 5, ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from bench_downstream import (
    OUT,
    REFERENCES,
    Method,
    ensure_runner,
    gray3,
    ground_truth,
    model_method,
    run_detections,
    score,
    stems,
    subset,
)

from sage_core import Fuser, InferenceOptions
from sage_core.eval.detection import PostProcess

Fuse = Callable[[np.ndarray, np.ndarray], np.ndarray]


def compose(y: np.ndarray, vis: np.ndarray, gain: float) -> np.ndarray:
    """BGR from luminance ``y`` (float, 0..255) and the visible chroma scaled by ``gain`` about 128."""
    ycc = cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    ycc[..., 0] = y
    ycc[..., 1:] = 128.0 + gain * (ycc[..., 1:] - 128.0)
    return cv2.cvtColor(np.clip(np.rint(ycc), 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2BGR)


def luma(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[..., 0].astype(np.float32)


def match(y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``y`` rescaled to the mean and standard deviation of ``reference`` (one image)."""
    return (y - y.mean()) / max(float(y.std()), 1e-3) * float(reference.std()) + float(reference.mean())


def luminances(ours: Fuse) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Named luminance sources: (ir, vis) -> Y in 0..255."""
    def avg(ir, vis):
        return (luma(vis) + luma(gray3(ir))) / 2

    return {"ours": lambda ir, vis: luma(ours(ir, vis)), "avg": avg,
            "thermal": lambda ir, vis: luma(gray3(ir)),
            "matched": lambda ir, vis: match(luma(ours(ir, vis)), avg(ir, vis))}


VARIANTS = {  # name: (luminance source, chroma gain)
    "ours Y, chroma x1": ("ours", 1.0), "ours Y, chroma x0.5": ("ours", 0.5), "ours Y, gray": ("ours", 0.0),
    "avg Y, chroma x1": ("avg", 1.0), "avg Y, chroma x0.5": ("avg", 0.5), "avg Y, gray": ("avg", 0.0),
    "matched Y, chroma x1": ("matched", 1.0), "matched Y, chroma x0.5": ("matched", 0.5),
    "thermal Y, chroma x0.5": ("thermal", 0.5),
}


def variant_method(name: str) -> Method:
    source, gain = VARIANTS[name]

    def make() -> Fuse:
        ours = Fuser.from_options(InferenceOptions(device="cpu")).fuse
        y_of = luminances(ours)[source]
        return lambda ir, vis: compose(y_of(ir, vis), vis, gain)
    key = "diag-" + name.replace(" ", "").replace(",", "-")
    return Method(name, key, make)


def method_list(names: list[str], models: list[Path]) -> list[Method]:
    base = {"visible": Method("visible", "visible", lambda: (lambda ir, vis: vis)),
            "thermal": Method("thermal", "thermal", lambda: (lambda ir, vis: gray3(ir))),
            "average": Method("average", "average_rgb",
                              lambda: (lambda ir, vis: cv2.addWeighted(vis, 0.5, gray3(ir), 0.5, 0))),
            "ours": model_method("ours (default)", None)}
    found = [base[n] if n in base else variant_method(n) for n in names]
    return found + [model_method(p.stem, p) for p in models]


def split(names: list[str], which: str) -> list[str]:
    return names if which == "all" else names[0 if which == "even" else 1::2]


def table(results: dict, methods: list[str], label_set: str = "fusion") -> str:
    """AP50 per method (rows) and class/subset (columns), and each method minus the best reference."""
    keys = [k for k in results if k[0] == label_set]
    cols = [f"{k[1]} {k[2]}" for k in keys]
    lines = ["| AP50 | " + " | ".join(cols) + " |", "| --- |" + " ---: |" * len(cols)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{results[k]['ap'][m]:.3f}" for k in keys) + " |")
    lines += ["", "minus the best of visible / thermal / average on that column (paired bootstrap, 95%):", "",
              "| minus best ref | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for m in methods:
        cells = []
        for k in keys:
            refs = {r: results[k]["ap"][r] for r in REFERENCES if r in results[k]["ap"]}
            best = max(refs, key=refs.get)
            cells.append("-" if m == best or (m, best) not in results[k]["diff"]
                         else f"{str(results[k]['diff'][(m, best)])} vs {best}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def luma_stats(names: list[str]) -> str:
    """Mean / std of Y for ours, avg and thermal by day and night: what the detector's input looks like."""
    from bench_downstream import read_pair
    ours = Fuser.from_options(InferenceOptions(device="cpu")).fuse
    sources = luminances(ours)
    rows = ["| subset | Y source | mean | std |", "| --- | --- | ---: | ---: |"]
    for which in ("day", "night"):
        chosen = subset(names, which)
        for src in ("ours", "avg", "thermal"):
            ys = [sources[src](*read_pair(s)) for s in chosen]
            rows.append(f"| {which} | {src} | {np.mean([y.mean() for y in ys]):.1f} | "
                        f"{np.mean([y.std() for y in ys]):.1f} |")
    return "\n".join(rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("even", "odd", "all"), default="even")
    parser.add_argument("--variants", nargs="*", default=["visible", "thermal", "average", "ours", *VARIANTS])
    parser.add_argument("--model-file-path", nargs="*", type=Path, default=[])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--stats", action="store_true", help="also the luminance mean/std table")
    parser.add_argument("--cache", type=Path, default=OUT / "cache")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    ensure_runner()
    names = split(stems(None), args.split)
    methods = method_list(args.variants, args.model_file_path)
    raw = run_detections(methods, names, args.cache)
    results = score(raw, {"fusion": ground_truth(names)["fusion"]}, names, args.resamples, 0, PostProcess())
    print(f"## split {args.split}: {len(names)} pairs ({len(subset(names, 'day'))} day, "
          f"{len(subset(names, 'night'))} night), fusion labels\n")
    print(table(results, [m.name for m in methods]))
    if args.stats:
        print("\n" + luma_stats(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
