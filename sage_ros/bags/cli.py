"""``sage-fuse --bag``: the bag mode of ``sage-fuse`` (registered in the entry-point group ``sage_fuse.modes``).

    sage-fuse --bag IN --out OUT [--thermal-topic T] [--rgb-topic R] [--params FILE.yaml]
              [--storage mcap|sqlite3] [--no-copy] [--overwrite] [--model-file-path M ...]
              [--rig RIG.yaml] [--registration-distance M] [--depth | --depth-topic D]

Bag mode reads a rosbag2 bag (folder, or a bare .mcap / .db3 file; MCAP or SQLite3 storage; raw or
compressed image topics), pairs and fuses the two cameras exactly as the fusion node would with the
same parameters (``--params``: the node's parameter YAML), and writes a new bag (MCAP unless told
otherwise; a name ending in .mcap or .db3 gives a single file) with the fused stream on
``/fused/image`` and, unless ``--no-copy``, every input topic as it was. The output appears only when
complete. A rig with a baseline (``--rig``, or the parameters file's ``rig_*``) is registered by its
geometry at ``--registration-distance``, or per pixel by the bag's depth image registered to the rgb camera
(``--depth``: the topic whose name says depth and aligned; ``--depth-topic``). Bad input (an unreadable or
truncated bag, a missing topic, a wrong type, an existing output) ends with one line and exit status 2; bad
messages inside the bag are counted and reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sage_core import inference_settings
from sage_core.errors import SageError

DESCRIPTION = __doc__.split("\n\n", 1)[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sage-fuse", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bag", required=True, type=Path, help="input rosbag2 folder, or a .mcap / .db3 file")
    parser.add_argument("--out", required=True, type=Path,
                        help="output bag folder (or OUT.mcap / OUT.db3 for a single file)")
    parser.add_argument("--thermal-topic", help="thermal image topic (default: detected)")
    parser.add_argument("--rgb-topic", help="RGB image topic (default: detected)")
    parser.add_argument("--params", type=Path, help="the fusion node's parameter YAML (e.g. config/fusion.yaml, "
                        "or sage-calibrate's output with the homography)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), help="output storage (default mcap)")
    parser.add_argument("--no-copy", action="store_true", help="write only the fused stream, not the input topics")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (once the new bag is "
                        "complete)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--time-offset", type=_time_offset, metavar="auto|SECONDS",
                        help="the thermal camera's stamps are this late against the RGB camera's (subtracted before "
                        "pairing), or auto: estimated from the images and followed (the node's auto_time_offset)")
    parser.add_argument("--rig", metavar="RIG.yaml", help="rig file: the thermal camera's pose in the rgb camera's "
                        "optical frame (the node's rig_file)")
    parser.add_argument("--registration-distance", type=_distance, metavar="M", help="with a rig: metres to the "
                        "plane thermal is registered at, or inf (the node's registration_distance)")
    parser.add_argument("--depth", action="store_true", help="register per pixel by the bag's depth image registered "
                        "to the rgb camera (the node's use_depth; the topic whose name says depth and aligned)")
    parser.add_argument("--depth-topic", help="the depth image topic (implies --depth)")
    # Defaults None: a flag not given leaves the parameters file (or the node's default) in force.
    inference_settings.add_arguments(parser, unset_defaults=True)
    return parser


def _time_offset(text: str) -> dict[str, object]:
    """--time-offset: the node parameters it stands for."""
    if text == "auto":
        return {"auto_time_offset": True}
    try:
        return {"time_offset": float(text)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number of seconds such as -0.033, got {text!r}") from None


def _distance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected metres such as 3.5, or inf, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a distance > 0 (metres) or inf, got {text}")
    return value


def _rig_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The rig flags given, as the node's parameters."""
    overrides: dict[str, object] = {}
    if args.rig:
        overrides["rig_file"] = args.rig
    if args.registration_distance is not None:
        overrides["registration_distance"] = args.registration_distance
    if args.depth or args.depth_topic:
        overrides["use_depth"] = True
    return overrides


def _run(args: argparse.Namespace) -> int:
    from sage_ros.bags.fuse_bag import fuse_bag, report  # rosbags loads only in bag mode
    from sage_ros.bags.params_file import load_params

    params, ignored = load_params(args.params, {**inference_settings.given(args), **(args.time_offset or {}),
                                                **_rig_overrides(args)})
    if ignored:
        print(f"sage-fuse: {args.params}: ignoring parameters the fusion node does not declare: "
              f"{', '.join(ignored)}", file=sys.stderr)
    result = fuse_bag(args.bag, args.out, params, thermal_topic=args.thermal_topic, rgb_topic=args.rgb_topic,
                      storage=args.storage, copy=not args.no_copy, overwrite=args.overwrite, progress=not args.quiet,
                      depth_topic=args.depth_topic)
    print(report(result))
    if result.published == 0:
        print(f"sage-fuse: error: nothing fused from {args.bag} (see the counts above); {args.out} holds the "
              "copied input only", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``sage-fuse --bag ...``; a SageError is one line and exit status 2."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except SageError as exc:
        print(f"sage-fuse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sage-fuse: interrupted; the output bag was not written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
