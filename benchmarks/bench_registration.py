"""Accuracy of sage-calibrate's registration on misaligned thermal views made from registered pairs.

    python benchmarks/bench_registration.py [--pairs 20] [--rigs 5] [--rig-pairs 4] [--datasets A B] [--thresholds]

Each pair of ../shared/datasets is re-rendered as a thermal camera with a known homography
(sage_core.registration.simulate: 60-95 % of the rgb width, 55-100 % of the pixels it covers,
roll up to +-5 degrees, slight perspective). Error: mean distance over a 5x5 grid of thermal
pixels (10-90 %), in rgb pixels scaled to 640 wide. Per dataset: median and p90 of the answered
pairs, wrong answers (answered but more than 12 px off), refusals, seconds per image pair; "one pair"
registers pairs one at a time, "N-pair rig" gives N scenes of one rig at once. "floor" refines
from the true transform: where the objective settles on this dataset's own registration.
``--thresholds`` also prints wrong answers and refusals against the confidence threshold.
Deterministic: fixed seeds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sage_core.image_files import dataset_pairs, read_image
from sage_core.registration import RegistrationError, grid_error, register
from sage_core.registration.quality import MIN_CONFIDENCE
from sage_core.registration.simulate import random_rig, render_thermal

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
WRONG_PX = 12.0


@dataclass
class Outcome:
    error: float | None  # None: refused
    confidence: float  # 0 when refused before any estimate
    seconds: float
    error_any: float | None = None  # error of the estimate even when refused (for threshold calibration)


def _load(pair) -> tuple[np.ndarray, np.ndarray]:
    ir, vis = read_image(pair.ir), read_image(pair.vis)
    return (ir if ir.ndim == 2 else ir[..., 0]), vis


def _run_rig(irs: list[np.ndarray], viss: list[np.ndarray], seed: int, start: bool = False) -> Outcome:
    rng = np.random.default_rng(seed)
    rig = random_rig((viss[0].shape[1], viss[0].shape[0]), rng)
    thermals = [render_thermal(ir, rig) for ir in irs]
    cv2.setRNGSeed(seed)
    started = time.perf_counter()
    try:
        reg = register(thermals, viss, strict=False, start=rig.homography if start else None)
    except RegistrationError:
        return Outcome(None, 0.0, (time.perf_counter() - started) / len(irs))
    seconds = (time.perf_counter() - started) / len(irs)
    error = grid_error(reg.homography, rig.homography, rig.thermal_size, viss[0].shape[1])
    answered = reg.quality.refusal is None
    return Outcome(error if answered else None, reg.quality.confidence, seconds, error)


def _single(pairs: list, seed: int, floor: bool) -> tuple[list[Outcome], list[Outcome]]:
    single, at_truth = [], []
    for index, pair in enumerate(pairs):
        ir, vis = _load(pair)
        single.append(_run_rig([ir], [vis], seed + index))
        if floor:
            at_truth.append(_run_rig([ir], [vis], seed + index, start=True))
    return single, at_truth


def _rigs(pairs: list, count: int, per_rig: int, seed: int) -> list[Outcome]:
    """``count`` rigs of ``per_rig`` pairs each, spread over the dataset. One rig has one rgb camera, so
    every pair is resized (both images: they stay registered) to the size of the rig's first pair."""
    outcomes = []
    for rig in range(count if len(pairs) >= per_rig else 0):
        stride = max(1, len(pairs) // per_rig)
        chosen = [pairs[(rig * 7 + k * stride) % len(pairs)] for k in range(per_rig)]
        loaded = [_load(pair) for pair in chosen]
        size = (loaded[0][1].shape[1], loaded[0][1].shape[0])
        irs = [cv2.resize(ir, size, interpolation=cv2.INTER_AREA) for ir, _ in loaded]
        viss = [cv2.resize(vis, size, interpolation=cv2.INTER_AREA) for _, vis in loaded]
        outcomes.append(_run_rig(irs, viss, seed + 1000 + rig))
    return outcomes


def _row(name: str, mode: str, outcomes: list[Outcome]) -> str:
    if not outcomes:
        return f"{name:13s} {mode:12s} {'-':>5s}"
    answered = np.array([o.error for o in outcomes if o.error is not None])
    median = f"{np.median(answered):6.2f}" if len(answered) else "     -"
    p90 = f"{np.percentile(answered, 90):6.2f}" if len(answered) else "     -"
    wrong = int((answered > WRONG_PX).sum())
    refused = sum(o.error is None for o in outcomes)
    n = len(outcomes)
    seconds = np.mean([o.seconds for o in outcomes])
    return (f"{name:13s} {mode:12s} {n:5d} {median} {p90} {wrong:4d} ({100 * wrong / n:4.1f} %) "
            f"{refused:4d} ({100 * refused / n:4.1f} %) {seconds:6.2f}")


def _thresholds(outcomes: list[Outcome]) -> None:
    print("\nconfidence threshold vs wrong answers and refusals (one pair, all datasets):")
    print(f"{'threshold':>9s} {'wrong':>7s} {'refused':>8s}")
    for threshold in (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8):
        wrong = sum(o.error_any is not None and o.confidence >= threshold and o.error_any > WRONG_PX
                    for o in outcomes)
        refused = sum(o.error_any is None or o.confidence < threshold for o in outcomes)
        marker = "  <- in use" if abs(threshold - MIN_CONFIDENCE) < 1e-9 else ""
        print(f"{threshold:9.2f} {100 * wrong / len(outcomes):6.1f}% {100 * refused / len(outcomes):7.1f}%{marker}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20, help="pairs per dataset, one at a time (default 20)")
    parser.add_argument("--rigs", type=int, default=5, help="several-pair rigs per dataset (default 5)")
    parser.add_argument("--rig-pairs", type=int, default=4, help="pairs per rig (default 4)")
    parser.add_argument("--datasets", nargs="*", default=None, help="dataset names (default: all in ../shared)")
    parser.add_argument("--no-floor", action="store_true", help="skip the refinement from the true transform")
    parser.add_argument("--thresholds", action="store_true", help="print the confidence threshold calibration")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    if not DATASETS.is_dir():
        print(f"needs {DATASETS} (the shared datasets beside the checkout), which is absent")
        return 1
    names = args.datasets or sorted(p.name for p in DATASETS.iterdir() if (p / "ir").is_dir())
    print(f"{'dataset':13s} {'mode':12s} {'pairs':>5s} {'median':>6s} {'p90':>6s} {'wrong':>11s} "
          f"{'refused':>11s} {'s/pair':>6s}   (px at 640-wide rgb; wrong: > {WRONG_PX:g} px)")
    everything, all_single, all_rigs = [], [], []
    started = time.perf_counter()
    for number, name in enumerate(names):
        pairs = dataset_pairs(DATASETS / name)
        chosen = [pairs[i] for i in np.unique(np.linspace(0, len(pairs) - 1, min(args.pairs, len(pairs))).astype(int))]
        single, at_truth = _single(chosen, args.seed * 100_000 + number * 1000, not args.no_floor)
        rigs = _rigs(pairs, args.rigs, args.rig_pairs, args.seed * 100_000 + number * 1000)
        print(_row(name, "one pair", single))
        print(_row(name, f"{args.rig_pairs}-pair rig", rigs))
        if at_truth:
            print(_row(name, "floor", at_truth))
        all_single += single
        all_rigs += rigs
        everything += single
    print(_row("all", "one pair", all_single))
    print(_row("all", f"{args.rig_pairs}-pair rig", all_rigs))
    if args.thresholds:
        _thresholds(everything)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
