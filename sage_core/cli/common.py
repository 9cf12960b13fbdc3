"""What the command-line tools share: the inference flags (named like the node's parameters) and
the one-line error convention (``PROG: error: what, where, what is expected``, exit status 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from sage_core.backends.registry import BACKEND_CHOICES
from sage_core.errors import SageError
from sage_core.options import InferenceOptions

EXIT_BAD_INPUT = 2


def add_inference_arguments(parser: argparse.ArgumentParser, model_help: str | None = None) -> None:
    """``--model-file-path`` (alias ``--weights``), ``--device``, ``--backend``, ``--engine-cache-dir``,
    ``--force-engine-update``, ``--enable-fp16`` (alias ``--fp16``): the node parameters' names."""
    group = parser.add_argument_group("model and inference (the fusion node's parameters of the same names)")
    group.add_argument("--model-file-path", "--weights", dest="model_file_path", type=Path, default=None,
                       help=model_help or "model file: our checkpoint, the released SAGE student state_dict, or "
                       "an export (.ts / .onnx / .ep with its sidecar .json) (default: the shipped model)")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    group.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                       help="inference backend (default auto: the fastest available here)")
    group.add_argument("--engine-cache-dir", type=Path, default=None,
                       help="folder of compiled engines (default ~/.cache/sage_ros/engines)")
    group.add_argument("--force-engine-update", action="store_true", help="rebuild cached engines")
    group.add_argument("--enable-fp16", "--fp16", dest="enable_fp16", action="store_true",
                       help="half precision on a GPU")
    group.add_argument("--inference-threads", type=int, default=0,
                       help="CPU threads for inference (default 0: every core for ONNX Runtime, half for PyTorch)")


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    return InferenceOptions(model_file_path=args.model_file_path, device=args.device, backend=args.backend,
                            engine_cache_dir=args.engine_cache_dir, force_engine_update=args.force_engine_update,
                            enable_fp16=args.enable_fp16, inference_threads=args.inference_threads)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run ``body``; a SageError becomes one line on stderr and exit status 2."""
    try:
        return body()
    except SageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; files already written are complete", file=sys.stderr)
        return 130
