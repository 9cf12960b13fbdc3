"""What the command-line tools share: the inference flags (named like the node's parameters) and
the one-line error convention (``PROG: error: what, where, what is expected``, exit status 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from sage_core import inference_settings
from sage_core.errors import SageError
from sage_core.options import InferenceOptions

EXIT_BAD_INPUT = 2


def add_inference_arguments(parser: argparse.ArgumentParser, model_help: str | None = None, *,
                            unset_defaults: bool = False) -> None:
    """The inference flags every command shares, from the one settings table (``--model-file-path`` alias
    ``--weights``, ``--device``, ``--backend``, ``--engine-cache-dir``, ``--force-engine-update``,
    ``--enable-fp16`` alias ``--fp16``, ``--inference-threads``); see inference_settings.add_arguments."""
    inference_settings.add_arguments(parser, model_help=model_help, unset_defaults=unset_defaults)


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    """The parsed inference flags as one InferenceOptions."""
    return InferenceOptions(**inference_settings.options_kwargs(args))


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
