"""The inference settings, each declared once: name, type, default, description, choices, range.

From :data:`SETTINGS` come the CLI flags of every command (:func:`add_arguments`), the fusion
node's parameters of the same names, and the fields of :class:`sage_core.options.InferenceOptions`
(a test keeps them equal). This module imports only the standard library, so a launch file or a
parameter table can read it in an interpreter without torch, OpenCV or numpy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")
#: The backends' names plus ``auto``; sage_core.backends.registry checks its classes against this.
BACKEND_CHOICES = ("auto", "torch", "torchscript", "onnxruntime", "tensorrt")
#: The shipped models by name (their files: ``sage_core.options.SHIPPED_MODELS``): ``default`` makes the picture for
#: people, ``detection`` the frame for machines (a frozen detector's input, docs/downstream.md).
MODEL_NAMES = ("default", "detection")
GROUP_TITLE = "model and inference (the fusion node's parameters of the same names)"
#: Set on the namespace by ``add_arguments(unset_defaults=True)``, so :func:`given` knows None means 'not given'.
_UNSET_MARK = "_inference_defaults_unset"


@dataclass(frozen=True)
class Setting:
    """One inference setting: an InferenceOptions field, a node parameter and a CLI flag of one name."""

    name: str  # InferenceOptions field = node parameter name; CLI flag --name-with-dashes
    kind: type  # str, bool or int
    default: object  # the node parameter's default: "" for an unset path, "auto", False, 0
    description: str  # one text for the CLI help and the node parameter description
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    aliases: tuple[str, ...] = ()  # extra CLI flags, e.g. ("--weights",)
    path: bool = False  # a file or folder (CLI type Path; node str, "" = none)
    #: What the CLI takes when it is more than ``choices`` (then not enforced by argparse but by the library).
    cli_values: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def cli_default(self) -> object:
        """The flag's default when not given: None for a path (the library's 'none'), else the node's default."""
        return None if self.path else self.default


SETTINGS: tuple[Setting, ...] = (
    Setting("model", str, "default",
            "shipped model by name: default (for people: the operator's picture) or detection (for machines: "
            "trained through a frozen detector as its input, docs/downstream.md); model_file_path, when set, is used "
            "instead", choices=MODEL_NAMES),
    Setting("model_file_path", str, "",
            "model file: our checkpoint, the released SAGE student, or a TorchScript / ONNX / TensorRT export with "
            "its sidecar JSON; empty: the shipped model named by model", aliases=("--weights",), path=True),
    Setting("device", str, "auto", "inference device", choices=DEVICES, cli_values="auto, cpu, cuda or cuda:N"),
    Setting("backend", str, "auto", "inference backend; auto: the fastest available for the device (logged with "
            "reasons)", choices=BACKEND_CHOICES),
    Setting("engine_cache_dir", str, "",
            "folder of compiled engines (TensorRT, ONNX), one per model hash, library version, GPU, precision and "
            "shape; empty: ~/.cache/sage_ros/engines", path=True),
    Setting("force_engine_update", bool, False, "rebuild the compiled engine even if a valid one is cached"),
    Setting("enable_fp16", bool, False, "half precision on a GPU (TensorRT, ONNX Runtime CUDA, torch)",
            aliases=("--fp16",)),
    Setting("inference_threads", int, 0,
            "CPU threads for inference; 0: with one frame in flight, every core for ONNX Runtime and OpenCV (their "
            "pools sleep when idle) and half of them for PyTorch (its pool spins, taking cores from message "
            "handling); with several (inference_workers), the cores divided among them", low=0, high=256),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _bounded_int(setting: Setting) -> Callable[[str], int]:
    """An argparse type: an integer within the setting's range, or a message saying which range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (setting.low is not None and value < setting.low) or (setting.high is not None and value > setting.high):
            raise argparse.ArgumentTypeError(f"{value} is outside [{setting.low}, {setting.high}]")
        return value
    return parse


def _help(setting: Setting) -> str:
    """The node's description, plus what the flag takes and its default (argparse lists enforced choices)."""
    notes = [setting.cli_values] if setting.cli_values else []
    if not setting.path and setting.kind is not bool:
        notes.append(f"default: {setting.default}")
    text = setting.description + (f" ({'; '.join(notes)})" if notes else "")
    return text.replace("%", "%%")  # argparse formats help with %


def _add(group: argparse._ArgumentGroup, setting: Setting, help_text: str, unset: bool) -> None:
    default = None if unset else setting.cli_default
    flags = (setting.flag, *setting.aliases)
    if setting.kind is bool:
        group.add_argument(*flags, dest=setting.name, action="store_true", default=default, help=help_text)
    elif setting.path:
        group.add_argument(*flags, dest=setting.name, type=Path, default=default, metavar="PATH", help=help_text)
    elif setting.kind is int:
        group.add_argument(*flags, dest=setting.name, type=_bounded_int(setting), default=default, metavar="N",
                           help=help_text)
    else:
        choices = setting.choices if setting.choices and not setting.cli_values else None
        metavar = None if choices else setting.name.upper()
        group.add_argument(*flags, dest=setting.name, choices=choices, default=default, metavar=metavar,
                           help=help_text)


def add_arguments(parser: argparse.ArgumentParser, *, model_help: str | None = None,
                  unset_defaults: bool = False) -> None:
    """Every setting as a flag, in one argument group. ``unset_defaults``: every default None, so that a
    caller can tell a flag not given (the bag CLI lays the given ones over a parameters file)."""
    group = parser.add_argument_group(GROUP_TITLE)
    for setting in SETTINGS:
        text = model_help if model_help and setting.name == "model_file_path" else _help(setting)
        _add(group, setting, text, unset_defaults)
    if unset_defaults:
        parser.set_defaults(**{_UNSET_MARK: True})


def given(args: argparse.Namespace) -> dict[str, object]:
    """The settings given on the command line, as node parameter values (paths as absolute str). Without
    ``unset_defaults`` a flag at its default counts as not given (it equals the node's default)."""
    unset = getattr(args, _UNSET_MARK, False)
    values: dict[str, object] = {}
    for setting in SETTINGS:
        value = getattr(args, setting.name, None)
        if value is None or (not unset and value == setting.cli_default):
            continue
        values[setting.name] = str(Path(value).resolve()) if setting.path else value
    return values


def options_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The settings as keyword arguments of InferenceOptions; a flag not given takes its default."""
    kwargs: dict[str, object] = {}
    for setting in SETTINGS:
        value = getattr(args, setting.name, None)
        kwargs[setting.name] = setting.cli_default if value is None else value
    return kwargs
