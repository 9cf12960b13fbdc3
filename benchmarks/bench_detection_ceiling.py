"""How far could any image beat the best camera for the frozen detector? Ceilings for issue 30's goal 3.

    python benchmarks/bench_detection_ceiling.py [--split test] [--resamples 1000] [--seed 0]

Goal 3 asks a fused frame to beat the best of visible, thermal and the plain average on person and car AP50
on msrs180's held-out half, with the paired-bootstrap 95 % interval of the difference above zero (all
images). This asks whether that is reachable at all with this detector and these 90 pairs. Against the best
single input of each row (by AP50), on both label sets, it scores:

- every method bench_downstream scores (same cached raw detections, decoding, AP50 and bootstrap draws);
- **late fusion** of the visible's and the thermal's detections (not an image: the usual reference for what
  two cameras give a detector): their raw rows together through the benchmark's per-class NMS (``late NMS``),
  or weighted box fusion of the two post-processed sets (``late WBF``: clusters at IoU 0.55, score-weighted
  box, mean score times the share of the two inputs present);
- **per-image oracles**, which pick for each test image one input's detections, using the test labels:
  ``oracle VTA`` among visible / thermal / average, ``oracle all`` among every method above. "Best" is greedy
  ascent on the pooled AP50 itself (start from the best single input; change one image's pick at a time while
  the row's AP rises; repeat until a pass changes nothing), fitted on each row's images, per class (``/cls``:
  person and car may come from different images, the loosest bound) or one pick per image for both classes
  (``/img``: maximises person + car AP, what one frame could do). ``oracle VTA tp-fp/cls`` picks, per image
  and class, the input with most true minus false positives at score >= 0.3 (ties: the best input), a rule
  that does not look at the pooled ranking. Picks fitted to the labels they are scored on make intervals
  optimistic, so these are upper bounds; how optimistic, ``oracle avg±2`` measures: the same oracle among the
  plain average and four copies of it brightened or darkened by 1 or 2 grey levels (``average +1`` ...; frames
  no one could tell apart, detected once more and cached like the others), which can only exploit the
  detector's jitter; ``oracle near-avg`` picks among three frames of about the average's AP that differ
  visibly (the average, the luminance average, the detection model): what picking with hindsight gains where
  no input is better on the whole;
- ``select VTA conf/img``: a rule that reads no labels, per image the input whose person and car detections
  at score >= 0.3 have the largest summed score (ties: the best input for both classes together).

For each difference: the point estimate, the 95 % interval, its half-width, and ``need`` = estimate minus the
interval's low end: the gain over the best input a method with the same bootstrap spread would need for its
interval to clear zero. Writes out/detection_ceiling/report.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from bench_downstream import (
    CLASSES,
    DATA,
    OUT,
    REFERENCES,
    Method,
    ensure_runner,
    gray3,
    ground_truth,
    methods,
    run_detections,
    stems,
    subset,
)

from sage_core.eval.detection import (
    ImageMatches,
    Interval,
    PooledMatches,
    PostProcess,
    bootstrap_weights,
    iou_matrix,
    match_image,
    paired_difference,
    postprocess,
)

Dets = dict[str, tuple[np.ndarray, np.ndarray]]  # class -> (boxes (N, 4), scores (N,))
Table = dict[str, list[ImageMatches]]  # method -> one ImageMatches per image of the subset
ROWS = (("person", "all"), ("car", "all"), ("person", "night"), ("car", "night"), ("person", "day"), ("car", "day"))
SINGLES = ("visible", "thermal", "average", "ours (default)", "ours (detection)")
JITTER = (1, -1, 2, -2)


def weighted_box_fusion(parts: list[tuple[np.ndarray, np.ndarray]], iou: float = 0.55) -> tuple[np.ndarray, np.ndarray]:
    """One class's detections from several sources fused by weighted boxes: in score order each box joins the
    cluster whose fused box it overlaps most (IoU > ``iou``) or starts one; a cluster's box is its members'
    score-weighted mean, its score the members' mean times min(members, sources) / sources."""
    boxes = np.concatenate([p[0] for p in parts]).reshape(-1, 4)
    scores = np.concatenate([p[1] for p in parts]).reshape(-1)
    fused: list[np.ndarray] = []
    members: list[list[int]] = []
    for k in np.argsort(-scores, kind="stable"):
        if fused:
            overlaps = iou_matrix(boxes[k:k + 1], np.asarray(fused))[0]
            j = int(np.argmax(overlaps))
            if overlaps[j] > iou:
                members[j].append(int(k))
                w = scores[members[j]]
                fused[j] = (w[:, None] * boxes[members[j]]).sum(axis=0) / max(float(w.sum()), 1e-12)
                continue
        fused.append(boxes[k].copy())
        members.append([int(k)])
    n = len(parts)
    out_scores = np.asarray([scores[m].mean() * min(len(m), n) / n for m in members], np.float64)
    return np.asarray(fused, np.float64).reshape(-1, 4), out_scores


def late_fusions(raw: dict[str, dict[str, np.ndarray]], post: PostProcess) -> dict[str, dict[str, Dets]]:
    """Detection-level fusions of the visible's and the thermal's detections, per image."""
    out: dict[str, dict[str, Dets]] = {"late NMS": {}, "late WBF": {}}
    for stem in raw["visible"]:
        out["late NMS"][stem] = postprocess(np.concatenate([raw["visible"][stem], raw["thermal"][stem]]), post)
        vis, ir = postprocess(raw["visible"][stem], post), postprocess(raw["thermal"][stem], post)
        out["late WBF"][stem] = {cls: weighted_box_fusion([vis[cls], ir[cls]]) for cls in vis}
    return out


def pooled_ap(table: Table, choice: list[str]) -> float:
    """AP of the images' detections taken from ``choice[i]``'s row for image i."""
    return PooledMatches([table[m][i] for i, m in enumerate(choice)]).average_precision()


def greedy_oracle(tables: list[Table], candidates: list[str], max_passes: int = 10) -> list[str]:
    """Per-image picks among ``candidates`` that (locally) maximise the summed AP of ``tables`` (one per class):
    start from the best single candidate, then change one image's pick at a time while the sum rises."""
    def value(choice: list[str]) -> float:
        return float(sum(np.nan_to_num(pooled_ap(t, choice)) for t in tables))
    n = len(tables[0][candidates[0]])
    choice = max(([m] * n for m in candidates), key=value)
    best = value(choice)
    for _ in range(max_passes):
        improved = False
        for i in range(n):
            for m in candidates:
                if m == choice[i]:
                    continue
                trial = [*choice[:i], m, *choice[i + 1:]]
                v = value(trial)
                if v > best + 1e-12:
                    best, choice, improved = v, trial, True
        if not improved:
            break
    return choice


def rule_pick(tables: list[Table], candidates: list[str], start: str,
              value: Callable[[ImageMatches], float]) -> list[str]:
    """Per image, the candidate whose detections have the largest ``value`` summed over ``tables`` (ties: ``start``)."""
    n = len(tables[0][start])
    return [max([start, *candidates], key=lambda c, i=i: sum(value(t[c][i]) for t in tables)) for i in range(n)]


def net_true(m: ImageMatches, min_score: float = 0.3) -> float:
    """True minus false positives at score >= ``min_score`` (reads the labels)."""
    kept = m.scores >= min_score
    return float(np.sum(m.true_positive[kept])) - float(np.sum(~m.true_positive[kept]))


def confidence(m: ImageMatches, min_score: float = 0.3) -> float:
    """The summed scores of the detections at score >= ``min_score`` (reads no labels)."""
    return float(np.sum(m.scores[m.scores >= min_score]))


def jitter_methods() -> list[Method]:
    """The plain average brightened or darkened by 1 or 2 grey levels: frames no one could tell apart, whose
    detections differ only by the detector's own sensitivity. An oracle among them measures what fitting
    picks to the test labels gains from that alone."""
    def shifted(delta: int) -> Method:
        def make():
            def fuse(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
                avg = cv2.addWeighted(vis, 0.5, gray3(ir), 0.5, 0).astype(np.int16)
                return np.clip(avg + delta, 0, 255).astype(np.uint8)
            return fuse
        return Method(f"average {delta:+d}", f"average_rgb_shift{delta:+d}", make)
    return [shifted(d) for d in JITTER]


def pick(table: Table, choice: list[str]) -> list[ImageMatches]:
    return [table[m][i] for i, m in enumerate(choice)]


def contenders(tables: dict[str, Table], images: list[str], start: dict[str, str]) -> dict[str, dict]:
    """{name: {class: [ImageMatches per image]}}: every method, then the selections (see the module doc)."""
    jitter = [m for m in tables[CLASSES[0]] if m.startswith("average ") and m[8:].lstrip("+-").isdigit()]
    out = {m: {cls: tables[cls][m] for cls in CLASSES} for m in tables[CLASSES[0]]}
    both = [tables[cls] for cls in CLASSES]
    near = [m for m in ("average", "average (Y)", "ours (detection)") if m in images]
    for label, candidates in (("VTA", list(REFERENCES)), ("all", images), ("avg±2", ["average", *jitter]),
                              ("near-avg", near)):
        out[f"oracle {label}/cls"] = {cls: pick(tables[cls], greedy_oracle([tables[cls]], candidates))
                                      for cls in CLASSES}
        joint = greedy_oracle(both, candidates)
        out[f"oracle {label}/img"] = {cls: pick(tables[cls], joint) for cls in CLASSES}
    refs = list(REFERENCES)
    out["oracle VTA tp-fp/cls"] = {cls: pick(tables[cls], rule_pick([tables[cls]], refs, start[cls], net_true))
                                   for cls in CLASSES}
    confident = rule_pick(both, refs, start["joint"], confidence)
    out["select VTA conf/img"] = {cls: pick(tables[cls], confident) for cls in CLASSES}
    return out


def score_subset(dets: dict[str, dict[str, Dets]], truth: dict, chosen: list[str], images: list[str],
                 weights: np.ndarray) -> dict[str, dict]:
    """{class: {"ap": {name: AP}, "best": input, "diff": {name: Interval vs best}, "n_boxes": ...}} on ``chosen``."""
    tables = {cls: {m: [match_image(*dets[m][s][cls], truth[s][cls]) for s in chosen] for m in dets}
              for cls in CLASSES}
    single = {(cls, r): np.nan_to_num(pooled_ap(tables[cls], [r] * len(chosen))) for cls in CLASSES
              for r in REFERENCES}
    start = {cls: max(REFERENCES, key=lambda r, c=cls: single[(c, r)]) for cls in CLASSES}
    start["joint"] = max(REFERENCES, key=lambda r: sum(single[(c, r)] for c in CLASSES))
    found = contenders(tables, images, start)
    out = {}
    for cls in CLASSES:
        pools = {name: PooledMatches(per[cls]) for name, per in found.items()}
        out[cls] = {"ap": {name: p.average_precision() for name, p in pools.items()}, "best": start[cls],
                    "diff": {name: paired_difference(p, pools[start[cls]], weights) for name, p in pools.items()
                             if name != start[cls]},
                    "n_boxes": int(sum(len(truth[s][cls]) for s in chosen))}
    return out


def evaluate(raw: dict, images: list[str], names: list[str], resamples: int, seed: int, post: PostProcess) -> dict:
    """{(label set, class, subset): score_subset's entry}, the bootstrap draws bench_downstream's; ``images``:
    the methods ``oracle all`` picks among."""
    dets = {m: {s: postprocess(r, post) for s, r in per.items()} for m, per in raw.items()}
    dets.update(late_fusions(raw, post))
    results = {}
    for label_set, truth in ground_truth(names).items():
        for which in ("all", "day", "night"):
            chosen = subset(names, which)
            weights = bootstrap_weights(len(chosen), resamples, seed)
            started = time.perf_counter()
            for cls, entry in score_subset(dets, truth, chosen, images, weights).items():
                results[(label_set, cls, which)] = {**entry, "n_images": len(chosen)}
            print(f"scored {label_set:>16} {which:>5} in {time.perf_counter() - started:.0f} s", flush=True)
    return results


def cell(iv: Interval) -> str:
    need = iv.difference - iv.low
    mark = " **>0**" if iv.low > 0 else ""
    return f"{iv}{mark} ±{(iv.high - iv.low) / 2:.3f}, need {need:+.3f}"


def tables_markdown(results: dict, shown: list[str], compared: list[str]) -> str:
    """Per label set: the AP table (rows of goal 3 first) and the differences against each row's best input."""
    lines: list[str] = []
    for label_set in dict.fromkeys(k[0] for k in results):
        keys = [(label_set, cls, which) for cls, which in ROWS]
        lines += [f"### AP50, `{label_set}` labels", "",
                  "| AP50 | images | boxes | best input | " + " | ".join(shown) + " |",
                  "| --- | ---: | ---: | --- |" + " ---: |" * len(shown)]
        for key in keys:
            r = results[key]
            lines.append(f"| {key[1]}, {key[2]} | {r['n_images']} | {r['n_boxes']} | {r['best']} | "
                         + " | ".join(f"{r['ap'][m]:.3f}" for m in shown) + " |")
        lines += ["", f"Minus the row's best input, `{label_set}` labels: estimate [95 % interval] ± half-width, "
                  "need = estimate - low end (**>0**: interval above zero):", "",
                  "| minus best input | " + " | ".join(f"{k[1]}, {k[2]}" for k in keys[:4]) + " |",
                  "| --- |" + " --- |" * 4]
        for name in compared:
            cells = [cell(results[k]["diff"][name]) if name in results[k]["diff"] else "(is the best input)"
                     for k in keys[:4]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def verdict(results: dict, compared: list[str]) -> str:
    """Goal 3's test per contender and label set: above the best input on the four rows, and the interval
    above zero for person and car on all images."""
    lines = ["### Goal 3's test, per contender", "",
             "| contender | label set | beats best input on person/car all/night (point) | interval > 0 on "
             "person all and car all | meets goal 3 |", "| --- | --- | --- | --- | --- |"]
    for name in compared:
        for label_set in dict.fromkeys(k[0] for k in results):
            diffs = [results[(label_set, c, w)]["diff"].get(name) for c, w in ROWS[:4]]
            points = all(d is not None and d.difference > 0 for d in diffs)
            above = all(d is not None and d.low > 0 for d in diffs[:2])
            lines.append(f"| {name} | {label_set} | {'yes' if points else 'no'} | {'yes' if above else 'no'} | "
                         f"{'**yes**' if points and above else 'no'} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("all", "test"), default="test",
                        help="test (default): msrs180's held-out half, goal 3's; all: the 180 pairs")
    parser.add_argument("--limit", type=int, default=None, help="only N pairs (spread over day and night)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=OUT / "cache", help="bench_downstream's raw detections")
    parser.add_argument("--out", type=Path, default=OUT.parent / "detection_ceiling")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, progress: Callable[[str], None] = print) -> str:
    """Detections (cached by bench_downstream, computed when missing), scores, and the report's text."""
    started = time.perf_counter()
    names = stems(args.limit, args.split)
    scored = methods([])
    raw = run_detections(scored + jitter_methods(), names, args.cache)
    post = PostProcess()
    results = evaluate(raw, [m.name for m in scored], names, args.resamples, args.seed, post)
    shown = [m for m in SINGLES if m in raw] + [m for m in raw if m not in SINGLES]
    oracles = [k for k in results[("fusion", "person", "all")]["ap"] if k.startswith(("late", "oracle", "select"))]
    compared = [m for m in shown if m not in REFERENCES[:2]] + oracles
    header = (f"## Ceilings for goal 3: msrs180 {args.split} split ({len(names)} pairs: "
              f"{len(subset(names, 'day'))} day, {len(subset(names, 'night'))} night)\n\nbench_downstream's "
              f"detector, decoding (score >= {post.min_score}, per-class NMS at {post.iou_threshold}), AP50 and "
              f"paired bootstrap ({args.resamples} resamples, seed {args.seed}, the same draws). Differences are "
              "against each row's best of visible / thermal / average. Oracles are fitted on the labels they are "
              f"scored on (upper bounds). Run time {time.perf_counter() - started:.0f} s.")
    report = "\n\n".join([header, tables_markdown(results, shown + oracles, compared), verdict(results, compared)])
    progress(report)
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (DATA / "labels" / "fusion").is_dir():
        print(f"needs {DATA} with labels/ (the shared datasets beside the checkout)", file=sys.stderr)
        return 2
    ensure_runner()
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report + "\n")
    print(f"\nwrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
