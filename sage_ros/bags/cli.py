"""``sage-fuse``: image files (``--ir/--vis``, :mod:`sage_core.cli.fuse`) or a rosbag2 bag (``--bag``), here.

    sage-fuse --bag IN --out OUT [--thermal-topic T] [--rgb-topic R] [--params FILE.yaml]
              [--storage mcap|sqlite3] [--no-copy] [--overwrite] [--model-file-path M ...]

Bag mode reads a rosbag2 bag (folder, or a bare .mcap / .db3 file; MCAP or SQLite3 storage; raw or
compressed image topics), pairs and fuses the two cameras exactly as the fusion node would with the
same parameters (``--params``: the node's parameter YAML), and writes a new bag (MCAP unless told
otherwise; a name ending in .mcap or .db3 gives a single file) with the fused stream on
``/fused/image`` and, unless ``--no-copy``, every input topic as it was. The output appears only when
complete. Bad input (an unreadable or truncated bag, a missing topic, a wrong type, an existing
output) ends with one line and exit status 2; bad messages inside the bag are counted and reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sage_core.cli.fuse import build_parser as build_image_parser
from sage_core.cli.fuse import main as image_main
from sage_core.cli.common import add_inference_arguments, run_command

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
    add_inference_arguments(parser)
    # None: not given, so the parameters file (or the node's default) decides.
    parser.set_defaults(device=None, backend=None, inference_threads=None)
    return parser


def inference_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The inference flags given on the command line, as node parameters (same names)."""
    values = {"model_file_path": str(args.model_file_path) if args.model_file_path else None,
              "device": args.device, "backend": args.backend, "inference_threads": args.inference_threads,
              "engine_cache_dir": str(args.engine_cache_dir) if args.engine_cache_dir else None,
              "force_engine_update": args.force_engine_update or None, "enable_fp16": args.enable_fp16 or None}
    return {name: value for name, value in values.items() if value is not None}


def _run(args: argparse.Namespace) -> int:
    from sage_ros.bags.fuse_bag import fuse_bag, report  # rosbags loads only in bag mode
    from sage_ros.bags.params_file import load_params

    params, ignored = load_params(args.params, inference_overrides(args))
    if ignored:
        print(f"sage-fuse: {args.params}: ignoring parameters the fusion node does not declare: "
              f"{', '.join(ignored)}", file=sys.stderr)
    result = fuse_bag(args.bag, args.out, params, thermal_topic=args.thermal_topic, rgb_topic=args.rgb_topic,
                      storage=args.storage, copy=not args.no_copy, overwrite=args.overwrite, progress=not args.quiet)
    print(report(result))
    if result.published == 0:
        print(f"sage-fuse: error: nothing fused from {args.bag} (see the counts above); {args.out} holds the "
              "copied input only", file=sys.stderr)
        return 1
    return 0


def bag_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run_command("sage-fuse", lambda: _run(args))


def _help() -> str:
    return (build_image_parser().format_help() + "\n" + "=" * 100 + "\nWith --bag: fuse a rosbag2 bag\n\n"
            + build_parser().format_help())


def main(argv: list[str] | None = None) -> int:
    """``sage-fuse``: bag mode when ``--bag`` is given, image files otherwise; ``--help`` describes both."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--bag" or a.startswith("--bag=") for a in argv):
        return bag_main(argv)
    if not argv or "-h" in argv or "--help" in argv:
        print(_help(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    return image_main(argv)


if __name__ == "__main__":
    sys.exit(main())
