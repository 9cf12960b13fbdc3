"""``sage-demo``: thermal + RGB streams through the real ROS 2 fusion node, written out to look at.

    sage-demo [--data DIR] [--frames 40] [--rate 10] [--size 640x512] [--model-file-path PATH] [--out out/demo]
    sage-demo --baseline 0.05 [--registration-distance M] [--depth] [--size 640x480] ...

A player node publishes thermal (``mono16``, raw counts as radiometric cameras
send them) and RGB (``bgr8``) pairs at ``--rate`` Hz: a generated night street
where people and a car are nearly invisible to the visible camera, or the pairs
of ``--data DIR`` (``ir/`` + ``vis/`` image pairs, or a clip: ``ir.mp4`` + ``vis.mp4`` played in order,
such as ../shared/datasets/m3svd_clips/0111_1716). With ``--baseline``, a rendered rig instead: a thermal
camera that far beside the RGB camera, a person walking from 6 m to 1.2 m towards it beside a car, both
cameras' camera_info, and (``--depth``) the RGB camera's depth on ``rgb/depth``; the node registers by the
rig's geometry at ``--registration-distance`` (default: the far plane, where the near person is doubled),
or per pixel by the depth. The fusion node runs as its own process,
over DDS on loopback only; a recorder node receives the fused stream. Written to
``--out``: ``frames/NNNN.png`` (thermal | visible | fused), ``demo.mp4``,
``mosaic.png`` (a few frames at a glance), ``summary.json`` (latency and
throughput), ``fused.mcap`` (a rosbag2 MCAP file of the thermal, RGB and fused streams as
published and received; Foxglove opens it, ``sage-fuse --bag`` fuses it again) and ``fusion_node.log``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from sage_core import inference_settings
from sage_core.errors import SageError
from sage_core.image_files import write_image_atomic
from sage_core.visualize import mosaic
from sage_ros.harness.dds import isolate_dds, remove_stale_shm_files
from sage_ros.harness.loopback import run_loopback
from sage_ros.harness.node_process import LoopbackError
from sage_ros.harness.pairs import (
    THERMAL_OFFSET_NS,
    dataset_input_pairs,
    rig_pairs,
    rig_parameters,
    synthetic_pairs,
)

#: The loopback run's namespace: the bag's topics are what the streams were called on DDS.
NAMESPACE = "/sage_demo"


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x512, got {text!r}") from None
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"frame size must be at least 64x64, got {text}")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sage-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder with ir/ and vis/, or a clip folder with ir.mp4 and vis.mp4 "
                        "(default: generated)")
    parser.add_argument("--frames", type=int, default=40, help="pairs to publish (default 40)")
    parser.add_argument("--rate", type=float, default=10.0, help="publishing rate in Hz (default 10)")
    parser.add_argument("--size", type=_size, default=(640, 512), help="generated frame size WxH (default 640x512)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    rig = parser.add_argument_group("a rendered rig with a baseline (the node's rig_translation, "
                                    "registration_distance, use_depth)")
    rig.add_argument("--baseline", type=float, help="metres between the thermal and the rgb camera (0 to 1)")
    rig.add_argument("--registration-distance", type=float, metavar="M", help="metres to the plane thermal is "
                     "registered at (default: the far plane)")
    rig.add_argument("--depth", action="store_true", help="publish the rgb camera's depth: registration per pixel")
    inference_settings.add_arguments(parser)
    return parser


def node_parameters(args: argparse.Namespace) -> dict[str, object]:
    """The inference and rig flags given, as the node's parameters; the others keep the node's defaults."""
    params = inference_settings.given(args)
    if args.baseline is not None:
        params.update(rig_parameters(args.baseline))
        if args.registration_distance is not None and math.isfinite(args.registration_distance):
            params["registration_distance"] = args.registration_distance  # inf is the node's default
        if args.depth:
            params["use_depth"] = True
    return params


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> bool:
    """mp4 through OpenCV's own encoder; False (and no file) when this OpenCV build has none."""
    height, width = frames[0].shape[:2]
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width - width % 2, height - height % 2))
    if not writer.isOpened():
        return False
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[: height - height % 2, : width - width % 2]))
    writer.release()
    tmp.replace(path)
    return True


def _run(args: argparse.Namespace):
    """Publish the pairs through the node; (pairs, source description, LoopbackResult, a rig's camera_infos)."""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frames").mkdir(exist_ok=True)
    infos = None
    if args.baseline is not None:
        print(f"sage-demo: rendering {args.frames} frames of a rig with a {100 * args.baseline:g} cm baseline ...",
              flush=True)
        pairs, infos = rig_pairs(args.frames, *args.size, args.baseline)
        source = (f"rendered rig {args.size[0]}x{args.size[1]}, baseline {args.baseline:g} m, registered "
                  + ("per pixel by depth" if args.depth else f"at {args.registration_distance or math.inf:g} m"))
        if not args.depth:
            pairs = [dataclasses.replace(pair, depth=None) for pair in pairs]
    elif args.data:
        if not args.data.is_dir():
            raise SageError(f"--data {args.data}: not a folder; expected ir/ + vis/ images or ir.mp4 + vis.mp4")
        pairs = dataset_input_pairs(args.data, args.frames)
        if not pairs:
            raise SageError(f"--data {args.data}: no frame could be read")
        source = f"{args.data} ({len(pairs)} pairs, thermal mono8)"
    else:
        pairs = synthetic_pairs(args.frames, *args.size, rate=args.rate)
        source = f"generated night street {args.size[0]}x{args.size[1]} (thermal mono16)"
    print(f"sage-demo: {source} at {args.rate:g} Hz -> fusion node (DDS on loopback, "
          f"domain {os.environ['ROS_DOMAIN_ID']})", flush=True)
    return pairs, source, run_loopback(pairs, args.rate, node_parameters(args), keep_frames=True,
                                       namespace=NAMESPACE, log_path=args.out / "fusion_node.log",
                                       camera_infos=infos), infos


def _write_bag(path: Path, pairs, result, camera_infos: dict[str, dict] | None) -> None:
    from sage_ros.bags.recording import write_loopback_bag  # rosbags loads only once there is something to write

    write_loopback_bag(path, NAMESPACE, pairs, result, THERMAL_OFFSET_NS, camera_infos)


def _write_outputs(args: argparse.Namespace, pairs, source: str, result, infos: dict[str, dict] | None) -> int:
    strips = []
    for index, fused in sorted(result.fused.items()):
        pair = pairs[index]
        strip = mosaic([("thermal", pair.thermal), ("visible", pair.visible), ("fused", fused)])
        write_image_atomic(args.out / "frames" / f"{index:04d}.png", strip)
        strips.append(strip)
    if not strips:
        print(f"sage-demo: error: no fused frame came back; see {args.out / 'fusion_node.log'}", file=sys.stderr)
        return 1
    picks = [strips[i] for i in np.linspace(0, len(strips) - 1, min(4, len(strips))).round().astype(int)]
    overview = write_image_atomic(args.out / "mosaic.png", np.concatenate(picks, axis=0))
    video = args.out / "demo.mp4"
    has_video = _write_video(video, strips, min(args.rate, 30.0))
    _write_bag(args.out / "fused.mcap", pairs, result, infos)
    latency = result.latency_percentiles()
    summary = {
        "source": source, "rate_hz": args.rate, "sent": result.sent, "received": result.received,
        "delivered_hz": round(result.delivered_hz, 2),
        "latency_ms": {k: round(v, 1) for k, v in latency.items()},
        "node_diagnostics": result.diagnostics,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"sage-demo: {result.received}/{result.sent} fused frames back, {result.delivered_hz:.1f} Hz delivered; "
          f"latency p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms (publish -> fused received); "
          f"node inference mean {result.diagnostics.get('inference (ms) mean', '?')} ms, "
          f"dropped pairs {result.diagnostics.get('dropped pairs', '?')}")
    print(f"look at: {overview.resolve()}")
    print(f"    and: {(args.out / 'frames').resolve()}/ ({len(strips)} frames)"
          + (f", {video.resolve()}" if has_video else "") + f", {(args.out / 'summary.json').resolve()}")
    print(f"    and: {(args.out / 'fused.mcap').resolve()} (thermal, RGB and fused streams: open it in Foxglove)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    isolate_dds()  # before anything starts rclpy: DDS stays on loopback
    remove_stale_shm_files()  # an earlier run killed with SIGKILL left its shared memory behind (dead processes' only)
    if args.frames < 1 or args.rate <= 0:
        print("sage-demo: error: --frames must be >= 1 and --rate > 0", file=sys.stderr)
        return 2
    if (args.registration_distance is not None or args.depth) and args.baseline is None:
        print("sage-demo: error: --registration-distance and --depth need --baseline (a rendered rig)", file=sys.stderr)
        return 2
    if args.baseline is not None and not 0.0 <= args.baseline <= 1.0:
        print(f"sage-demo: error: --baseline {args.baseline} m: expected 0 to 1 (metres)", file=sys.stderr)
        return 2
    try:
        pairs, source, result, infos = _run(args)
    except (SageError, LoopbackError) as exc:
        print(f"sage-demo: error: {exc}", file=sys.stderr)
        return 2
    return _write_outputs(args, pairs, source, result, infos)


if __name__ == "__main__":
    sys.exit(main())
