"""Alignment error with and without lens rectification, on pairs distorted with known coefficients; rectifier cost.

    python benchmarks/bench_rectification.py [--scenes synthetic m3fd_sage6/00003] [--seed 3] [--json]

Each scene is a registered thermal + visible pair (the generated street of sage_core.synthetic, or a pair of
../shared/datasets when present, skipped with a note when absent) drawn on a canvas 30 % larger than the
rgb camera's 640x480 view. A thermal camera looks at part of it through a known homography
(sage_core.registration.simulate.random_rig, 50-65 % of the rgb width), and each camera sees the canvas
through its own lens (sage_core.lens.distort_image: inverse mapping, each raw pixel undistorted to the
pinhole view it samples). Lens cases, thermal / rgb: a wide-angle plumb_bob (k1 -0.35, k2 0.12), an
equidistant fisheye, a rational_polynomial, each beside a mildly distorted rgb plumb_bob (k1 -0.12).

For each case sage_core.registration.register estimates the thermal -> rgb homography (a) on the raw,
distorted images and (b) on the images rectified with sage_core.rectification (the node's path). Error:
distance between where the estimate and the true mapping put a 9x9 grid of thermal pixels (5-95 % of the
image), in pixels of the 640-wide rgb image the fusion is drawn on: raw pixels for (a), where the truth is
the lens-to-lens mapping that no homography follows; rectified pixels for (b), where it is a homography.
"pinhole" is the same scene without any distortion: the registration's own floor. A "*" marks an estimate
that sage-calibrate would refuse (low confidence). Then the rectifier's cost: maps built once per
camera_info, one remap per frame, and a camera_info cache hit. Deterministic: fixed seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from sage_core.image_files import read_image
from sage_core.lens import LensModel, distort_image, distort_points, undistort_points
from sage_core.rectification import Rectifier, RectifierCache
from sage_core.registration import RegistrationError, register
from sage_core.registration.geometry import REPORT_WIDTH, grid_points, transform_points
from sage_core.registration.simulate import RigGeometry, random_rig
from sage_core.synthetic import SyntheticScene

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RGB_SIZE, CANVAS_SIZE = (640, 480), (832, 624)
MARGIN = ((CANVAS_SIZE[0] - RGB_SIZE[0]) / 2, (CANVAS_SIZE[1] - RGB_SIZE[1]) / 2)
TO_CANVAS = np.array([[1, 0, MARGIN[0]], [0, 1, MARGIN[1]], [0, 0, 1]], np.float64)  # rgb pinhole -> canvas
RGB_D = (-0.12, 0.04, 0.0005, 0.0003, 0.0)
#: name -> (thermal distortion model, d, horizontal field of view in degrees).
CASES = {
    "plumb_bob": ("plumb_bob", (-0.35, 0.12, 0.001, -0.0005, 0.0), 75.0),
    "equidistant": ("equidistant", (-0.03, 0.006, -0.002, 0.0005), 80.0),
    "rational_polynomial": ("rational_polynomial", (-0.28, 0.09, 0.0005, -0.0004, 0.0, 0.08, 0.01, 0.0), 75.0),
}


@dataclass
class Row:
    scene: str
    case: str
    thermal_size: tuple[int, int]
    without_mean: float | None  # None: nothing estimated
    without_max: float | None
    without_refused: bool
    with_mean: float | None
    with_max: float | None
    with_refused: bool


def lens(size: tuple[int, int], model: str, d: tuple[float, ...], hfov_deg: float) -> LensModel:
    """A camera with square pixels, the principal point a little off centre, P unset (as many drivers publish)."""
    w, h = size
    half = math.radians(hfov_deg / 2)
    # A fisheye's image half-width is f * theta at half the field of view; a pinhole's is f * tan(theta).
    f = (w / 2) / (half if model == "equidistant" else math.tan(half))
    k = (f, 0, (w - 1) / 2 + 0.013 * w, 0, f, (h - 1) / 2 - 0.01 * h, 0, 0, 1)
    return LensModel(w, h, model, d, k, tuple(np.eye(3).ravel()), (0.0,) * 12, source=f"{model} lens")


def load_scene(name: str, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(thermal mono8, visible BGR) of CANVAS_SIZE, registered; None when a shared pair is absent."""
    if name == "synthetic":
        frame = SyntheticScene(*CANVAS_SIZE, seed=seed).frame(1.0)
        return frame.thermal_mono8, frame.visible
    dataset, stem = name.split("/")
    folder = DATASETS / dataset
    ir_files, vis_files = list((folder / "ir").glob(f"{stem}.*")), list((folder / "vis").glob(f"{stem}.*"))
    if not ir_files or not vis_files:
        return None
    ir, vis = read_image(ir_files[0]), read_image(vis_files[0])
    ir = ir if ir.ndim == 2 else ir[..., 0]
    return (cv2.resize(ir, CANVAS_SIZE, interpolation=cv2.INTER_AREA),
            cv2.resize(vis, CANVAS_SIZE, interpolation=cv2.INTER_AREA))


def border(size: tuple[int, int], n: int = 16) -> np.ndarray:
    w, h = size
    xs, ys = np.linspace(0, w - 1, n), np.linspace(0, h - 1, n)
    return np.concatenate([np.column_stack([xs, np.zeros(n)]), np.column_stack([xs, np.full(n, h - 1.0)]),
                           np.column_stack([np.zeros(n), ys]), np.column_stack([np.full(n, w - 1.0), ys])])


def pick_rig(seed: int, thermal_lenses: list) -> RigGeometry:
    """A rig whose thermal view stays on the canvas through every thermal lens (its raw image has no black edge)."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        rig = random_rig(RGB_SIZE, rng, fov=(0.5, 0.65), resolution=(0.9, 1.0), max_roll=3.0)
        inside = True
        for make in thermal_lenses:
            camera = make(rig.thermal_size)
            seen = transform_points(TO_CANVAS @ rig.homography, undistort_points(camera, border(rig.thermal_size)))
            inside &= bool(np.all((seen > 1) & (seen < np.array(CANVAS_SIZE) - 2)))
        if inside:
            return rig
    raise RuntimeError("no rig keeps the thermal view on the canvas; widen CANVAS_SIZE")


def estimate(thermal: np.ndarray, rgb: np.ndarray, seed: int) -> tuple[np.ndarray | None, bool]:
    """The registered homography (None if nothing could be estimated) and whether sage-calibrate would refuse it."""
    cv2.setRNGSeed(seed)
    try:
        reg = register([thermal], [rgb], strict=False)
    except RegistrationError:
        return None, True
    return reg.homography, reg.quality.refusal is not None


def errors(estimated: np.ndarray | None, truth, size: tuple[int, int]) -> tuple[float | None, float | None]:
    """Mean and max distance (px, 640-wide rgb) over a 9x9 grid of thermal pixels; ``truth`` maps points."""
    if estimated is None:
        return None, None
    points = grid_points(size, n=9, low=0.05, high=0.95)
    distance = np.linalg.norm(transform_points(estimated, points) - truth(points), axis=1) * REPORT_WIDTH / RGB_SIZE[0]
    return float(distance.mean()), float(distance.max())


def thermal_source(ir: np.ndarray, rig: RigGeometry) -> np.ndarray:
    """The canvas thermal image, blurred as a sensor of the rig's resolution integrates (as render_thermal does)."""
    shrink = np.linalg.norm(rig.homography[:2, :2] @ np.array([1.0, 0.0]))
    return cv2.GaussianBlur(ir, (0, 0), 0.45 * shrink) if shrink > 1.05 else ir


def run_case(scene: str, case: str, ir: np.ndarray, vis: np.ndarray, rig: RigGeometry, seed: int) -> Row:
    model, d, hfov = CASES[case]
    t_lens, r_lens = lens(rig.thermal_size, model, d, hfov), lens(RGB_SIZE, "plumb_bob", RGB_D, 60.0)
    raw_t = distort_image(thermal_source(ir, rig), t_lens, TO_CANVAS @ rig.homography)
    raw_r = distort_image(vis, r_lens, TO_CANVAS)
    # (a) raw: the truth is lens to lens, through the pinhole views: no homography follows it.
    h_raw, refused_raw = estimate(raw_t, raw_r, seed)
    without = errors(h_raw, lambda p: distort_points(r_lens, transform_points(rig.homography, undistort_points(
        t_lens, p))), rig.thermal_size)
    # (b) rectified: rectified pixel -> pinhole (K K'^-1), the rig, pinhole -> rectified rgb (K_r' K_r^-1).
    t_rect, r_rect = Rectifier(t_lens), Rectifier(r_lens)
    h_rect, refused_rect = estimate(t_rect(raw_t), r_rect(raw_r), seed)
    truth = (r_rect.new_camera_matrix @ np.linalg.inv(r_lens.camera_matrix) @ rig.homography
             @ t_lens.camera_matrix @ np.linalg.inv(t_rect.new_camera_matrix))
    rectified = errors(h_rect, lambda p: transform_points(truth, p), rig.thermal_size)
    return Row(scene, case, rig.thermal_size, *without, refused_raw, *rectified, refused_rect)


def run_scene(scene: str, ir: np.ndarray, vis: np.ndarray, seed: int) -> list[Row]:
    makers = [lambda size, c=c: lens(size, CASES[c][0], CASES[c][1], CASES[c][2]) for c in CASES]
    rig = pick_rig(seed, makers)
    pinhole_t = cv2.warpPerspective(thermal_source(ir, rig), TO_CANVAS @ rig.homography, rig.thermal_size,
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    pinhole_r = vis[int(MARGIN[1]):int(MARGIN[1]) + RGB_SIZE[1], int(MARGIN[0]):int(MARGIN[0]) + RGB_SIZE[0]]
    h, refused = estimate(pinhole_t, pinhole_r, seed)
    floor = errors(h, lambda p: transform_points(rig.homography, p), rig.thermal_size)
    rows = [Row(scene, "pinhole", rig.thermal_size, *floor, refused, None, None, False)]
    return rows + [run_case(scene, case, ir, vis, rig, seed) for case in CASES]


def cost(repeats: int = 20) -> tuple[list[dict], float]:
    """Map build and per-frame remap times at 640x512 and 1280x1024, and a camera_info cache hit (µs)."""
    out = []
    rng = np.random.default_rng(0)
    for size in ((640, 512), (1280, 1024)):
        camera = lens(size, *CASES["plumb_bob"])
        builds = []
        for _ in range(3):
            builds.append(Rectifier(camera).build_ms)
        rectifier = Rectifier(camera)
        w, h = size
        for encoding, image in (("mono8", rng.integers(0, 256, (h, w), dtype=np.uint8)),
                                ("mono16", rng.integers(0, 65536, (h, w), dtype=np.uint16)),
                                ("bgr8", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))):
            rectifier(image)  # warm the caches
            started = time.perf_counter()
            for _ in range(repeats):
                rectifier(image)
            out.append({"size": f"{w}x{h}", "encoding": encoding, "build_ms": float(np.median(builds)),
                        "frame_ms": (time.perf_counter() - started) / repeats * 1e3})
    fields = camera.fields()
    message = SimpleNamespace(**{**fields, **{name: np.asarray(fields[name]) for name in "dkrp"}})  # as rclpy has
    cache = RectifierCache()
    cache.get(message)
    started = time.perf_counter()
    for _ in range(1000):
        cache.get(message)
    return out, (time.perf_counter() - started) / 1000 * 1e6


def _cell(mean: float | None, worst: float | None, refused: bool) -> str:
    if mean is None:
        return f"{'no estimate':>16s}"
    return f"{mean:6.2f} / {worst:6.2f}{'*' if refused else ' '}"


def print_tables(rows: list[Row], costs: list[dict], cache_us: float, skipped: list[str]) -> None:
    print(f"{'scene':18s} {'thermal lens':20s} {'thermal':>8s}  {'raw: mean / max':>16s}  "
          f"{'rectified: mean / max':>22s}  {'raw / rectified':>15s}")
    for row in rows:
        size = f"{row.thermal_size[0]}x{row.thermal_size[1]}"
        rectified = "" if row.case == "pinhole" else _cell(row.with_mean, row.with_max, row.with_refused)
        ratio = ""
        if row.with_mean and row.without_mean is not None:
            ratio = f"{row.without_mean / row.with_mean:6.1f}x mean, {row.without_max / row.with_max:5.1f}x max"
        raw = _cell(row.without_mean, row.without_max, row.without_refused)
        print(f"{row.scene:18s} {row.case:20s} {size:>8s}  {raw}  {rectified:>22s}  {ratio}")
    for scene in skipped:
        print(f"{scene:18s} skipped: {DATASETS} has no such pair")
    print("(px in the 640-wide rgb image, 9x9 grid over 5-95 % of the thermal image; rgb lens plumb_bob k1 -0.12; "
          "* = sage-calibrate would refuse it)\n")
    print(f"{'rectifier cost':18s} {'encoding':8s} {'maps once (ms)':>14s} {'per frame (ms)':>15s}")
    for entry in costs:
        print(f"{entry['size']:18s} {entry['encoding']:8s} {entry['build_ms']:14.1f} {entry['frame_ms']:15.2f}")
    print(f"camera_info cache hit (same lens, new message): {cache_us:.1f} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="*", default=["synthetic", "m3fd_sage6/00003"],
                        help="'synthetic' or DATASET/STEM of ../shared/datasets (default: synthetic m3fd_sage6/00003)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()
    started = time.perf_counter()
    rows, skipped = [], []
    for number, scene in enumerate(args.scenes):
        pair = load_scene(scene, args.seed + number)
        if pair is None:
            skipped.append(scene)
            continue
        rows += run_scene(scene, *pair, seed=args.seed * 1000 + number)
    costs, cache_us = cost()
    if args.json:
        print(json.dumps({"alignment": [asdict(row) for row in rows], "skipped": skipped, "cost": costs,
                          "cache_hit_us": cache_us, "seconds": time.perf_counter() - started}, indent=1))
    else:
        print_tables(rows, costs, cache_us, skipped)
        print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
