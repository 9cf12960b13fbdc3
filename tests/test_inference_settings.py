"""The one table of inference settings: light to import, and the CLI, InferenceOptions and registry agree."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from sage_core import inference_settings as settings
from sage_core.cli.common import inference_options
from sage_core.errors import ConfigError
from sage_core.options import SHIPPED_MODELS, InferenceOptions

NAMES = ("model", "model_file_path", "device", "backend", "engine_cache_dir", "force_engine_update", "enable_fp16",
         "inference_threads")


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    settings.add_arguments(parser, **kwargs)
    return parser


def test_importing_the_settings_and_options_loads_no_torch_opencv_or_numpy():
    code = ("import sys, sage_core.inference_settings, sage_core.options\n"
            "print(sorted(m for m in ('torch', 'cv2', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_table_order_and_lookup():
    assert tuple(s.name for s in settings.SETTINGS) == NAMES
    assert list(settings.BY_NAME) == list(NAMES)
    for setting in settings.SETTINGS:
        assert setting.kind in (str, bool, int)
        assert type(setting.default) is setting.kind
        assert setting.description
        assert not setting.choices or setting.default in setting.choices
        assert not setting.path or setting.default == ""


def test_cli_flags_are_the_table():
    group = next(g for g in _parser()._action_groups if g.title == settings.GROUP_TITLE)
    flags = [(a.dest, tuple(a.option_strings)) for a in group._group_actions]
    assert flags == [(s.name, (s.flag, *s.aliases)) for s in settings.SETTINGS]
    assert settings.BY_NAME["model_file_path"].aliases == ("--weights",)
    assert settings.BY_NAME["enable_fp16"].aliases == ("--fp16",)
    for action in group._group_actions:
        assert action.default == settings.BY_NAME[action.dest].cli_default
        assert settings.BY_NAME[action.dest].description in action.help


def test_registry_agrees_with_the_table():
    from sage_core.backends import registry

    assert registry.BACKEND_CHOICES == settings.BACKEND_CHOICES == ("auto", *registry.BACKENDS)


def test_inference_options_fields_match_the_table():
    option_fields = {f.name: f for f in dataclasses.fields(InferenceOptions)}
    assert set(option_fields) - set(NAMES) == {"engine_shape"}  # a build detail, not a node parameter
    for setting in settings.SETTINGS:
        assert option_fields[setting.name].default == setting.cli_default, setting.name
    assert InferenceOptions(**settings.options_kwargs(_parser().parse_args([]))) == InferenceOptions()


def test_device_takes_cuda_n_on_the_cli_and_choices_are_enforced_elsewhere():
    parser = _parser()
    assert parser.parse_args(["--device", "cuda:1"]).device == "cuda:1"
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["--backend", "tflite"])
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["--inference-threads", "-1"])
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["--inference-threads", "two"])


def test_given_returns_only_what_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    parser = _parser()
    assert settings.given(parser.parse_args([])) == {}
    args = parser.parse_args(["--weights", "m.pt", "--device", "cpu", "--fp16", "--inference-threads", "3"])
    assert settings.given(args) == {"model_file_path": str(tmp_path / "m.pt"), "device": "cpu", "enable_fp16": True,
                                    "inference_threads": 3}
    options = inference_options(args)
    assert (options.model_file_path, options.device, options.enable_fp16) == (Path("m.pt"), "cpu", True)
    assert options.backend == "auto" and options.inference_threads == 3


def test_given_with_unset_defaults_keeps_an_explicit_default():
    parser = _parser(unset_defaults=True)
    empty = parser.parse_args([])
    assert all(getattr(empty, name) is None for name in NAMES)
    assert settings.given(empty) == {}
    # --device auto over a parameters file that says cuda must win, so it counts as given.
    assert settings.given(parser.parse_args(["--device", "auto", "--force-engine-update"])) == {
        "device": "auto", "force_engine_update": True}
    assert InferenceOptions(**settings.options_kwargs(empty)) == InferenceOptions()


def test_model_help_replaces_only_the_model_text():
    group = next(g for g in _parser(model_help="the student")._action_groups if g.title == settings.GROUP_TITLE)
    helps = {a.dest: a.help for a in group._group_actions}
    assert helps["model_file_path"] == "the student"
    assert helps["device"].startswith("inference device")


def test_a_shipped_model_by_name_and_a_file_wins_over_the_name(tmp_path: Path):
    assert tuple(SHIPPED_MODELS) == settings.MODEL_NAMES == settings.BY_NAME["model"].choices
    assert all(path.is_file() for path in SHIPPED_MODELS.values())
    parser = _parser()
    assert inference_options(parser.parse_args([])).model_path == SHIPPED_MODELS["default"]
    assert inference_options(parser.parse_args(["--model", "detection"])).model_path == SHIPPED_MODELS["detection"]
    chosen = inference_options(parser.parse_args(["--model", "detection", "--weights", str(tmp_path / "m.pt")]))
    assert chosen.model_path == tmp_path / "m.pt"
    assert settings.given(parser.parse_args(["--model", "detection"])) == {"model": "detection"}
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["--model", "people"])
    with pytest.raises(ConfigError, match="model 'people': not a shipped model; expected one of default, detection"):
        _ = InferenceOptions(model="people").model_path
