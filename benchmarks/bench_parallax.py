"""Registration error of a rig with a baseline, per object distance: one homography, a registration distance
set right and wrong, and per-pixel registration from an RGB-D depth image; and its cost per frame.

    nice -n 19 python benchmarks/bench_parallax.py [--baseline 0.05] [--distances 1 2 3 5 10 20 30]
                                                   [--wrong-factor 2] [--pictures out/parallax] [--json]

A rendered rig (sage_core.parallax_scene): a 640x480 RGB camera (70 degrees, f 457 px) and a 640x512 thermal
camera (50 degrees) ``--baseline`` m to its right, turned 0.5 degrees (yaw) and 0.3 degrees (roll), both
ray-cast from their own poses, so parallax and occlusion are exact. For each distance Z a scene holds a
person whose front is Z away and, from 3 m on, a vehicle whose rear is Z away, on a ground plane before a
wall at 45 m. The RGB camera's depth image is an RGB-D camera's aligned depth: millimetres, noise 0.005 Z^2 m
(a stereo camera's 0.08 px disparity noise), nothing beyond 12 m nor on the vehicle's glass, holes where its
second imager (5 cm to the other side) cannot see, flying pixels on half the depth edges, speckle dropouts.

Error: for each RGB pixel of an object that the thermal camera sees, the distance between the thermal pixel
a method samples and the one that truly sees that point, in pixels of the 640-wide RGB image (thermal pixels
times f_rgb / f_thermal); median / p95 over the objects' pixels. Methods: the far plane's homography (what
a homography calibrated on far content gives: today's registration); the plane at the registration distance
set right (Z) and wrong (Z times --wrong-factor); per-pixel depth (sage_core.rig_alignment.RigAligner,
occlusion z-buffer, holes within --fill-holes px of a depth filled, the others falling back to the far plane),
over the pixels the depth camera measured ("valid") and over all object pixels. "left out": object pixels
the depth path leaves without thermal (judged hidden). Then the cost per frame at 640x480 and 1280x720
(thermal 640x512; the output is the far plane's crop): the homography warp (the baseline), and the depth
path (depth to metres, maps, z-buffer, remap), median of --repeats frames, with the ratio. Deterministic:
fixed seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np

from sage_core.alignment import Aligner, AlignmentConfig
from sage_core.image_files import write_image_atomic
from sage_core.parallax_scene import (
    COUNTS_AT_ZERO,
    COUNTS_PER_DEGREE,
    ParallaxScene,
    Person,
    Vehicle,
    depth_image,
    make_rig,
)
from sage_core.registration.geometry import REPORT_WIDTH
from sage_core.rig_alignment import DepthSettings, RigAligner
from sage_core.visualize import mosaic

RGB_SIZE, THERMAL_SIZE = (640, 480), (640, 512)


def scene_at(distance: float) -> ParallaxScene:
    """A person (front at ``distance``) left of centre and, from 3 m on, a vehicle (rear at ``distance``) right."""
    objects: list = [Person(-0.18 * distance, distance)]
    if distance >= 3:
        objects.append(Vehicle(0.3 * distance + 0.2, distance))
    return ParallaxScene(objects, wall=45.0, seed=int(distance * 10))


def truth(rig, scene: ParallaxScene, rendered) -> tuple[np.ndarray, np.ndarray]:
    """Per RGB pixel: the thermal pixel that truly sees its 3-D point (H x W x 2), and which object pixels count
    (an object's, inside the thermal image, not hidden from the thermal camera)."""
    points = rendered.rgb_view.points
    r, t = rig.extrinsics.rotation, rig.extrinsics.translation
    with np.errstate(invalid="ignore"):
        q = ((points - t) @ r) @ rig.thermal.k.T
        q = q[..., :2] / q[..., 2:]
    w, h = rig.thermal.size
    inside = (q[..., 0] >= 0) & (q[..., 0] <= w - 1) & (q[..., 1] >= 0) & (q[..., 1] <= h - 1)
    objects = (rendered.rgb_view.ids >= 2) & inside & scene.visible_from(t, points)
    return q, objects


def plane_maps(rig, distance: float) -> np.ndarray:
    """Where the homography of the plane at ``distance`` samples the thermal image for each RGB pixel."""
    w, h = rig.rgb.size
    pixels = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1)
    mapped = cv2.perspectiveTransform(pixels.reshape(1, -1, 2), np.linalg.inv(rig.homography(distance)))[0]
    return mapped.reshape(h, w, 2)


def stats(errors: np.ndarray) -> dict | None:
    if errors.size == 0:
        return None
    return {"median": float(np.median(errors)), "p95": float(np.percentile(errors, 95)), "pixels": int(errors.size)}


def run_distance(rig, distance: float, wrong_factor: float, settings: DepthSettings, seed: int) -> tuple[dict, tuple]:
    scene = scene_at(distance)
    rendered = scene.render(rig)
    depth = depth_image(scene, rendered, seed=seed)
    q, objects = truth(rig, scene, rendered)
    to_report = rig.rgb.k[0, 0] / rig.thermal.k[0, 0] * REPORT_WIDTH / rig.rgb.size[0]

    def error(mapped: np.ndarray, where: np.ndarray) -> dict | None:
        return stats(np.linalg.norm(mapped[where] - q[where], axis=-1) * to_report)

    aligner = RigAligner(AlignmentConfig(crop_to_valid=False), rig, depth=settings)  # output grid = rgb grid
    _, maps = aligner.depth_maps(rig.thermal.size, depth)
    per_pixel = np.stack([maps.map_x, maps.map_y], -1).astype(np.float64)
    kept, valid = objects & ~maps.occluded, depth > 0  # valid: the depth camera measured it (before hole filling)
    row = {
        "distance_m": distance, "object_pixels": int(objects.sum()),
        "formula_px": rig.parallax_px(distance, math.inf) * REPORT_WIDTH / rig.rgb.size[0],
        "homography_far": error(plane_maps(rig, math.inf), objects),
        "distance_right": error(plane_maps(rig, distance), objects),
        "distance_wrong": error(plane_maps(rig, distance * wrong_factor), objects),
        "depth_valid": error(per_pixel, kept & valid),
        "depth_all": error(per_pixel, kept),
        "depth_valid_share": float((objects & valid).sum() / max(1, objects.sum())),
        "left_out_share": float((objects & maps.occluded).sum() / max(1, objects.sum())),
    }
    return row, (rendered, depth, aligner)


def timed(function, repeats: int) -> float:
    """Median milliseconds of ``function()`` over ``repeats`` calls, after one warm-up call."""
    function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return 1000 * float(np.median(samples))


def cost_at(size: tuple[int, int], baseline: float, repeats: int) -> dict:
    """Milliseconds per frame of the homography warp and of the depth path at one RGB size."""
    rig = make_rig(size, THERMAL_SIZE, baseline=baseline)
    scene = scene_at(2.0)
    rendered = scene.render(rig)
    depth = depth_image(scene, rendered)
    homography = Aligner(AlignmentConfig(homography=rig.homography(math.inf).ravel().tolist()))
    rig_aligner = RigAligner(AlignmentConfig(), rig)
    plan, maps = rig_aligner.depth_maps(THERMAL_SIZE, depth)
    lookup = rig_aligner.lookup(plan)
    thermal = rendered.thermal.astype(np.float32) / 65535  # as the pipeline aligns it: normalised
    warp_ms = timed(lambda: homography(thermal, rendered.rgb), repeats)
    depth_ms = timed(lambda: rig_aligner.align_depth(thermal, rendered.rgb, depth), repeats)
    maps_ms = timed(lambda: rig_aligner.depth_maps(THERMAL_SIZE, depth), repeats)
    remap_ms = timed(lambda: lookup.warp(thermal, maps), repeats)
    return {"rgb_size": f"{size[0]}x{size[1]}", "output_size": f"{plan.output_size[0]}x{plan.output_size[1]}",
            "homography_ms": warp_ms, "depth_ms": depth_ms, "maps_and_zbuffer_ms": maps_ms, "remap_ms": remap_ms,
            "ratio": depth_ms / warp_ms}


def _cell(entry: dict | None) -> str:
    return "-" if entry is None else f"{entry['median']:.2f} / {entry['p95']:.2f}"


def print_tables(rows: list[dict], costs: list[dict], args: argparse.Namespace) -> None:
    header = (f"{'Z (m)':>6s} {'f*b/Z':>6s} {'pixels':>7s} {'homography (far)':>17s} {'distance = Z':>14s} "
              f"{f'distance = {args.wrong_factor:g}Z':>15s} {'depth (valid)':>14s} {'depth (all)':>13s} "
              f"{'valid':>6s} {'left out':>8s}")
    print(f"registration error, px of the 640-wide rgb image, median / p95 over the objects' pixels "
          f"(baseline {args.baseline * 100:g} cm; depth holes filled within {args.fill_holes} px, the rest at the far "
          "plane)")
    print(header)
    for row in rows:
        print(f"{row['distance_m']:6g} {row['formula_px']:6.2f} {row['object_pixels']:7d} "
              f"{_cell(row['homography_far']):>17s} {_cell(row['distance_right']):>14s} "
              f"{_cell(row['distance_wrong']):>15s} {_cell(row['depth_valid']):>14s} {_cell(row['depth_all']):>13s} "
              f"{100 * row['depth_valid_share']:5.0f}% {100 * row['left_out_share']:7.1f}%")
    met = all(row["depth_valid"] is None or row["depth_valid"]["median"] <= 1.0 for row in rows)
    print(f"target (depth within 1 px median wherever depth is valid): {'met' if met else 'NOT met'}")
    print(f"\n{'cost per frame':16s} {'output':>9s} {'homography (ms)':>16s} {'depth path (ms)':>16s} "
          f"{'maps + z-buffer':>16s} {'remap':>7s} {'ratio':>6s}")
    for entry in costs:
        print(f"{entry['rgb_size']:16s} {entry['output_size']:>9s} {entry['homography_ms']:16.2f} "
              f"{entry['depth_ms']:16.2f} {entry['maps_and_zbuffer_ms']:16.2f} {entry['remap_ms']:7.2f} "
              f"{entry['ratio']:6.1f}")


def picture(path: Path, rendered, depth: np.ndarray, aligner: RigAligner) -> None:
    """A near scene: the registered thermal over the rgb image, the outline of what it says is warmer than 25 C
    (green) and of the objects the rgb camera sees (cyan), by the far plane's homography and by depth."""
    far, _ = aligner(rendered.thermal, rendered.rgb)
    per_pixel, _ = aligner.align_depth(rendered.thermal, rendered.rgb, depth)

    def overlay(thermal: np.ndarray) -> np.ndarray:
        degrees = (thermal.astype(np.float32) - COUNTS_AT_ZERO) / COUNTS_PER_DEGREE
        colour = cv2.applyColorMap(np.clip((degrees + 5) * 6, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
        out = cv2.addWeighted(rendered.rgb, 0.5, colour, 0.5, 0)
        out[thermal == 0] = rendered.rgb[thermal == 0] // 3  # no thermal: outside its view, or hidden from it
        for mask, bgr in ((rendered.rgb_view.ids >= 2, (255, 255, 0)), (degrees > 25, (0, 255, 0))):
            out[cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0] = bgr
        return out

    depth_view = cv2.applyColorMap(cv2.convertScaleAbs(depth, alpha=255 / 12000), cv2.COLORMAP_TURBO)
    depth_view[depth == 0] = 0
    write_image_atomic(path, mosaic([("rgb camera's depth (black: none)", depth_view),
                                     ("thermal by the far plane's homography", overlay(far)),
                                     ("thermal by per-pixel depth", overlay(per_pixel))]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=float, default=0.05, help="m between the cameras (default 0.05)")
    parser.add_argument("--distances", type=float, nargs="+", default=[1, 2, 3, 5, 10, 20, 30])
    parser.add_argument("--wrong-factor", type=float, default=2.0, help="the wrong distance is Z times this")
    parser.add_argument("--fill-holes", type=int, default=DepthSettings().fill_holes_px,
                        help="depth holes this close to a depth take the farthest one around (the node's "
                        f"depth_fill_holes; default {DepthSettings().fill_holes_px}); 0: holes take the far plane")
    parser.add_argument("--repeats", type=int, default=30, help="timed frames per size (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pictures", type=Path, help="write the overlays of the scenes up to 3 m here (a folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()
    started = time.perf_counter()
    rig = make_rig(RGB_SIZE, THERMAL_SIZE, baseline=args.baseline)
    settings = DepthSettings(fill_holes_px=args.fill_holes)
    rows = []
    for distance in args.distances:
        row, near = run_distance(rig, distance, args.wrong_factor, settings, args.seed)
        rows.append(row)
        if args.pictures and distance <= 3:
            args.pictures.mkdir(parents=True, exist_ok=True)
            picture(args.pictures / f"parallax_{distance:g}m.png", *near)
    costs = [cost_at(size, args.baseline, args.repeats) for size in ((640, 480), (1280, 720))]
    if args.json:
        print(json.dumps({"errors": rows, "cost": costs}, indent=2))
    else:
        print_tables(rows, costs, args)
        print(f"\n{time.perf_counter() - started:.0f} s in all; OpenCV threads {cv2.getNumThreads()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
