"""Downstream benchmark: does a fused frame help a frozen COCO detector more than either camera?

    python benchmarks/bench_downstream.py [--model-file-path PATH ...] [--limit N | --smoke] [--resamples 1000]

The detector is the CenterNet (MobileNetV3 backbone, 512x512, COCO) TF.js graph model that ships in
the npm package @vladmandic/human 3.3.6 (models/centernet.json + .bin, MIT), run unchanged by
benchmarks/downstream/detect.mjs with TF.js's WASM backend in Node (installed here by ``npm ci``
from the pinned package-lock.json when node_modules is missing). It sees each method's output for
the 180 msrs180 pairs (../shared/datasets/msrs180): visible, thermal, average, max, GFF, the shipped
default model, the released SAGE student (when ../shared has it) and every --model-file-path.

AP50 (IoU 0.5, VOC all-point) for person and car (COCO car+bus+truck), for all / day / night, on two
label sets: ``fusion`` (drawn on fused images) and the union of ``infrared`` and ``visible`` (each
drawn on its own camera; a visible box that overlaps an infrared one of its class at IoU >= 0.5 is
the same object). Paired bootstrap over images (--resamples, seeded) of each method minus each
single input and minus the average, 95% intervals. Writes out/downstream/report.md and a picture
(detections on visible, thermal, average and fused for a night pair); raw detections are cached
in out/downstream/cache/<detector>/<method>/<stem>.npy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from sage_core import Fuser, InferenceOptions
from sage_core.eval.baselines import make_baseline
from sage_core.eval.detection import (
    ImageMatches,
    PooledMatches,
    PostProcess,
    bootstrap_weights,
    load_yolo_labels,
    match_image,
    paired_difference,
    postprocess,
    union_labels,
)
from sage_core.options import DEFAULT_WEIGHTS, SHIPPED_MODELS

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "benchmarks" / "downstream"
SHARED = REPO.parent / "shared"
DATA = SHARED / "datasets" / "msrs180"
OFFICIAL = SHARED / "checkpoints" / "sage_official_student.pt"
OUT = REPO / "out" / "downstream"
DETECTOR_ID = "centernet-human3.3.6-tfjs4.22.0-wasm"
CLASSES = ("person", "car")
SUBSETS = ("all", "day", "night")
REFERENCES = ("visible", "thermal", "average")


def ensure_runner(runner: Path = RUNNER) -> None:
    """Install the pinned npm packages (``npm ci``) into ``runner`` when node_modules is missing."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench_downstream needs {tool} (Node 18+) on PATH to run the TF.js detector")
    if not (runner / "node_modules" / "@vladmandic" / "human" / "models" / "centernet.json").exists():
        print(f"installing the detector's npm packages into {runner} (npm ci) ...", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=runner, check=True)


class TfjsDetector:
    """The CenterNet graph in a Node child process: BGR uint8 image in, raw (100, 6) detections out."""

    def __init__(self, backend: str = "wasm") -> None:
        self.process = subprocess.Popen(["node", str(RUNNER / "detect.mjs"), backend], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the TF.js detector exited (status {self.process.wait()}); see its stderr above")
        return json.loads(line)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        header = json.dumps({"h": rgb.shape[0], "w": rgb.shape[1]}) + "\n"
        self.process.stdin.write(header.encode() + rgb.tobytes())
        self.process.stdin.flush()
        return np.asarray(self._read()["detections"], np.float64).reshape(-1, 6)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@dataclass
class Method:
    name: str
    key: str  # cache folder: changes when the method's output can change
    make: Callable[[], Callable[[np.ndarray, np.ndarray], np.ndarray]]  # -> fuse(ir, vis) -> BGR


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def model_method(name: str, path: Path | None) -> Method:
    weights = DEFAULT_WEIGHTS if path is None else Path(path)

    def make():
        return Fuser.from_options(InferenceOptions(model_file_path=path, device="cpu")).fuse
    return Method(name, f"{name}-{file_digest(weights)}", make)


def gray3(ir: np.ndarray) -> np.ndarray:
    gray = ir if ir.ndim == 2 else cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY)
    if gray.dtype != np.uint8:
        gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def methods(model_paths: list[Path]) -> list[Method]:
    """visible, thermal (as gray BGR), the plain image average and maximum ((visible + thermal) / 2 per
    channel, rounded), the project's luminance average (sage_core.eval.baselines: (Y + thermal) / 2
    with the visible colour), GFF, the shipped default, the released student, the given models."""
    found = [Method("visible", "visible", lambda: (lambda ir, vis: vis)),
             Method("thermal", "thermal", lambda: (lambda ir, vis: gray3(ir))),
             Method("average", "average_rgb", lambda: (lambda ir, vis: cv2.addWeighted(vis, 0.5, gray3(ir), 0.5, 0))),
             Method("max", "max_rgb", lambda: (lambda ir, vis: np.maximum(vis, gray3(ir)))),
             Method("average (Y)", "average_y", lambda: make_baseline("average").fuse),
             Method("gff", "gff", lambda: make_baseline("gff").fuse)]
    found.append(model_method("ours (default)", None))
    found += [model_method("ours (detection)", SHIPPED_MODELS["detection"])] * SHIPPED_MODELS["detection"].exists()
    if OFFICIAL.exists():
        found.append(model_method("released student", OFFICIAL))
    found += [model_method(Path(p).stem, Path(p)) for p in model_paths]
    return found


def stems(limit: int | None, split: str = "all") -> list[str]:
    """The pairs' stems, sorted; ``split`` ``test``: the held-out half (odd indices; sage_core.train.detection_data)."""
    names = sorted(p.stem for p in (DATA / "vis").glob("*.png"))
    names = [n for i, n in enumerate(names) if split == "all" or i % 2 == 1]
    if limit and limit < len(names):  # spread over the list, so a few images hold day and night pairs
        names = [names[int(i)] for i in np.linspace(0, len(names) - 1, limit).round()]
    return names


def read_pair(stem: str) -> tuple[np.ndarray, np.ndarray]:
    ir = cv2.imread(str(DATA / "ir" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    vis = cv2.imread(str(DATA / "vis" / f"{stem}.png"), cv2.IMREAD_COLOR)
    return ir, vis


def run_detections(method_list: list[Method], names: list[str], cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """Raw detections of every method on every pair, from the cache or computed (and cached)."""
    raw: dict[str, dict[str, np.ndarray]] = {}
    detector = None
    try:
        for method in method_list:
            folder = cache / DETECTOR_ID / method.key
            folder.mkdir(parents=True, exist_ok=True)
            fuse, raw[method.name] = None, {}
            for stem in tqdm(names, desc=f"{method.name:>18}", unit="img", leave=True):
                path = folder / f"{stem}.npy"
                if not path.exists():
                    fuse = fuse or method.make()
                    detector = detector or TfjsDetector()
                    np.save(path, detector(fuse(*read_pair(stem))))
                raw[method.name][stem] = np.load(path)
    finally:
        if detector is not None:
            detector.close()
    return raw


def ground_truth(names: list[str]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """{label set: {stem: {class: boxes}}} for ``fusion`` and the ``infrared`` + ``visible`` union."""
    sets: dict[str, dict[str, dict[str, np.ndarray]]] = {"fusion": {}, "infrared+visible": {}}
    for stem in names:
        h, w = cv2.imread(str(DATA / "vis" / f"{stem}.png"), cv2.IMREAD_COLOR).shape[:2]
        load = {s: load_yolo_labels(DATA / "labels" / s / f"{stem}.txt", w, h)
                for s in ("fusion", "infrared", "visible")}
        sets["fusion"][stem] = load["fusion"]
        sets["infrared+visible"][stem] = union_labels(load["infrared"], load["visible"])
    return sets


def subset(names: list[str], which: str) -> list[str]:
    return [s for s in names if which == "all" or s.endswith("D" if which == "day" else "N")]


def pooled(dets: dict[str, dict], gts: dict[str, dict], names: list[str], cls: str) -> PooledMatches:
    matches: list[ImageMatches] = [match_image(*dets[s][cls], gts[s][cls]) for s in names]
    return PooledMatches(matches)


def score(raw, gts, names, resamples, seed, post: PostProcess) -> dict:
    """{(label set, class, subset): {"ap": {method: AP}, "diff": {(method, reference): Interval}, "n": ...}}."""
    dets = {m: {s: postprocess(r, post) for s, r in per.items()} for m, per in raw.items()}
    results = {}
    for label_set, truth in gts.items():
        for which in SUBSETS:
            chosen = subset(names, which)
            weights = bootstrap_weights(len(chosen), resamples, seed)
            for cls in CLASSES:
                pools = {m: pooled(dets[m], truth, chosen, cls) for m in dets}
                diffs = {(m, r): paired_difference(pools[m], pools[r], weights)
                         for m in pools for r in REFERENCES if r in pools and r != m}
                results[(label_set, cls, which)] = {
                    "ap": {m: p.average_precision() for m, p in pools.items()}, "diff": diffs,
                    "n_images": len(chosen), "n_boxes": int(sum(len(truth[s][cls]) for s in chosen))}
    return results


def markdown(results: dict, method_names: list[str], header: str) -> str:
    lines = [header, ""]
    for label_set in dict.fromkeys(k[0] for k in results):
        rows = [k for k in results if k[0] == label_set]
        lines += [f"### AP50, `{label_set}` labels", "",
                  "| AP50 | images | boxes | " + " | ".join(method_names) + " |",
                  "| --- | ---: | ---: |" + " ---: |" * len(method_names)]
        for key in rows:
            aps = results[key]["ap"]
            best = max(v for v in aps.values() if np.isfinite(v)) if any(np.isfinite(v) for v in aps.values()) else None
            cells = [(f"**{aps[m]:.3f}**" if aps[m] == best else f"{aps[m]:.3f}") for m in method_names]
            lines.append(f"| {key[1]}, {key[2]} | {results[key]['n_images']} | {results[key]['n_boxes']} | "
                         + " | ".join(cells) + " |")
        for ref in REFERENCES:
            others = [m for m in method_names if m != ref]
            lines += ["", (f"AP50 difference, method minus **{ref}**, `{label_set}` labels "
                      "(paired bootstrap over images, 95% interval):"), "",
                      "| minus " + ref + " | " + " | ".join(others) + " |", "| --- |" + " --- |" * len(others)]
            for key in rows:
                lines.append(f"| {key[1]}, {key[2]} | " + " | ".join(str(results[key]["diff"][(m, ref)])
                                                                    for m in others) + " |")
        lines.append("")
    return "\n".join(lines)


COLOURS = {"person": (60, 220, 60), "car": (0, 160, 255)}


def draw(image: np.ndarray, dets: dict, truth: dict, title: str, min_score: float) -> np.ndarray:
    canvas = image.copy()
    for cls in CLASSES:
        for box in truth[cls]:
            x1, y1, x2, y2 = (round(v) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (255, 255, 255), 1)
        for box, s in zip(*dets[cls]):
            if s >= min_score:
                x1, y1, x2, y2 = (round(v) for v in box)
                cv2.rectangle(canvas, (x1, y1), (x2, y2), COLOURS[cls], 2)
                cv2.putText(canvas, f"{s:.2f}", (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, COLOURS[cls], 1)
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(canvas, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return canvas


def picture(method_list, raw, gts, names, post: PostProcess, path: Path, min_score: float = 0.3) -> str | None:
    """Detections on visible, thermal, average and the shipped models' frames for the night pair with most people."""
    truth = gts["fusion"]
    night = subset(names, "night") or names
    if not night:
        return None
    stem = max(night, key=lambda s: (len(truth[s]["person"]), s))
    shown = [m for m in method_list if m.name in ("visible", "thermal", "average") or m.name.startswith("ours")]
    ir, vis = read_pair(stem)
    panels = [draw(m.make()(ir, vis), postprocess(raw[m.name][stem], post), truth[stem],
                   f"{m.name} ({stem})", min_score) for m in shown]
    while len(panels) % 2:
        panels.append(np.zeros_like(panels[0]))
    grid = np.vstack([np.hstack(panels[i:i + 2]) for i in range(0, len(panels), 2)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid)
    return stem


def pair_rows(ref: np.ndarray, ours: np.ndarray, within: float = 1.0) -> np.ndarray:
    """(box diff, score diff) for each row of ``ref`` whose class has a row in ``ours`` within ``within`` px."""
    out = []
    for row in ref:
        same = ours[ours[:, 5] == row[5]]
        if len(same):
            dist = np.abs(same[:, :4] - row[:4]).max(axis=1)
            k = int(np.argmin(dist))
            if dist[k] <= within:
                out.append((dist[k], abs(same[k, 4] - row[4])))
    return np.asarray(out).reshape(-1, 2)


def check_torch(method_list, raw, gts, names, post: PostProcess, which: list[str]) -> str:
    """The detector converted to PyTorch (sage_core.eval.tfjs_graph) on the same inputs as TF.js: differences."""
    from sage_core.eval.centernet import TorchCenterNet
    torch_detector = TorchCenterNet(RUNNER / "node_modules" / "@vladmandic" / "human" / "models" / "centernet.json")
    lines = ["### The detector in PyTorch against TF.js, same inputs", "",
             ("Each TF.js row (box, score, class of the graph's top 100) is paired with the PyTorch row of its "
             "class nearest to it; unpaired rows (nothing within 1 px) are near-ties swapped at the top-100 cut."), "",
             ("| method | images | rows paired | max box diff, paired (px) | max score diff, paired | "
             "same detections after post-processing | AP50 fusion labels, TF.js / PyTorch |"),
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for method in [m for m in method_list if m.name in which]:
        fuse, ours = method.make(), {}
        for stem in tqdm(names, desc=f"torch {method.name:>12}", unit="img"):
            ours[stem] = torch_detector(fuse(*read_pair(stem)))
        ref = raw[method.name]
        pairs = [pair_rows(ref[s], ours[s]) for s in names]
        paired = np.concatenate([p for p in pairs if len(p)]) if any(len(p) for p in pairs) else np.zeros((0, 2))
        n_rows = sum(len(ref[s]) for s in names)
        same = np.mean([all(len(a[0]) == len(b[0]) and np.allclose(a[0], b[0], atol=0.01) and
                            np.allclose(a[1], b[1], atol=1e-5) for a, b in
                            zip(postprocess(ours[s], post).values(), postprocess(ref[s], post).values()))
                        for s in names])
        aps = []
        for cls in CLASSES:
            for part in SUBSETS:
                chosen = subset(names, part)
                dets = [{s: postprocess(r[s], post) for s in chosen} for r in (ref, ours)]
                a, b = (pooled(d, gts["fusion"], chosen, cls).average_precision() for d in dets)
                aps.append(f"{cls} {part} {a:.3f}/{b:.3f}")
        lines.append(f"| {method.name} | {len(names)} | {len(paired)}/{n_rows} | {paired[:, 0].max():.4f} | "
                     f"{paired[:, 1].max():.2e} | {same:.1%} | "
                     + "; ".join(aps) + " |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-file-path", nargs="*", type=Path, default=[], help="more fusion models to score")
    parser.add_argument("--limit", type=int, default=None, help="only N pairs (spread over day and night)")
    parser.add_argument("--split", choices=("all", "test"), default="all",
                        help="test: only the held-out half (odd indices), which detection training never reads")
    parser.add_argument("--smoke", action="store_true", help="3 pairs, 100 resamples: checks that it runs")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-score", type=float, default=PostProcess.min_score,
                        help="detections below this score are dropped before NMS")
    parser.add_argument("--max-detections", type=int, default=PostProcess.max_detections)
    parser.add_argument("--nms", choices=("class", "agnostic"), default=PostProcess.nms,
                        help="NMS within each class (default) or over all classes as @vladmandic/human does")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check-torch", nargs="*", metavar="METHOD", default=None,
                        help="also run the detector converted to PyTorch on these methods' images (default: visible "
                             "thermal average) and compare with TF.js")
    parser.add_argument("--cache", type=Path, default=OUT / "cache", help="raw detections, by detector, method, pair")
    parser.add_argument("--no-cache", action="store_true", help="recompute every detection")
    args = parser.parse_args(argv)
    if args.smoke:
        args.limit, args.resamples = 3, 100
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (DATA / "labels" / "fusion").is_dir():
        print(f"needs {DATA} with labels/ (the shared datasets beside the checkout)", file=sys.stderr)
        return 2
    ensure_runner()
    start = time.perf_counter()
    names = stems(args.limit, args.split)
    method_list = methods(args.model_file_path)
    cache = args.cache
    if args.no_cache:
        shutil.rmtree(cache / DETECTOR_ID, ignore_errors=True)
    raw = run_detections(method_list, names, cache)
    gts = ground_truth(names)
    post = PostProcess(min_score=args.min_score, max_detections=args.max_detections, nms=args.nms)
    results = score(raw, gts, names, args.resamples, args.seed, post)
    stem = picture(method_list, raw, gts, names, post, args.out / "night_detections.png")
    elapsed = time.perf_counter() - start
    header = (f"## Downstream detection on msrs180{' (held-out test half)' if args.split == 'test' else ''} "
              f"({len(names)} pairs: {len(subset(names, 'day'))} day, {len(subset(names, 'night'))} night)\n\n"
              f"Detector: CenterNet MobileNetV3 (COCO), @vladmandic/human 3.3.6 `models/centernet.json`, TF.js 4.22.0 "
              f"WASM, unchanged; detections with score >= {post.min_score}, COCO car+bus+truck = car, "
              f"{'per-class' if post.nms == 'class' else 'class-agnostic'} NMS at IoU {post.iou_threshold}, at most "
              f"{post.max_detections} per {'class and image' if post.nms == 'class' else 'image'}. `average` and `max` "
              f"are plain per-channel image operations on visible and thermal; `average (Y)` is the project's "
              f"luminance baseline. AP50 is VOC all-point at IoU 0.5 pooled over images; intervals: paired bootstrap "
              f"over images, {args.resamples} "
              f"resamples, seed {args.seed}. `fusion` labels were drawn on fused images; `infrared+visible` is the "
              f"union of the boxes drawn on each camera alone (each set annotated per camera; a visible box with "
              f"IoU >= 0.5 to an infrared box of its class is one object). Picture: {stem}. Run time {elapsed:.0f} s.")
    report = markdown(results, [m.name for m in method_list], header)
    if args.check_torch is not None:
        report += "\n" + check_torch(method_list, raw, gts, names, post,
                                     args.check_torch or ["visible", "thermal", "average"]) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report + "\n")
    print(report)
    print(f"\nwrote {args.out / 'report.md'} and {args.out / 'night_detections.png'} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
