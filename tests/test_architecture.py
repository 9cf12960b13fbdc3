"""The layout rules of docs/architecture.md, checked on the source: layers, sizes, thin scripts, public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("sage_core", "sage_ros", "training", "benchmarks", "launch")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80
LAUNCH_FILE = REPO / "launch" / "fusion.launch.py"
#: ROS itself: rclpy, the message packages, launch.
ROS_PACKAGES = ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces", "builtin_interfaces",
                "lifecycle_msgs", "launch", "launch_ros")
ROS = (*ROS_PACKAGES, "sage_ros")
#: The ROS-facing part of sage_ros: the node modules, node/ (subscriptions, publishers, /diagnostics) and the
#: harness (it starts rclpy). Everything else in sage_ros (parameters, stream/, codec/, bags/) runs without ROS.
ROS_FACING = ("sage_ros/fusion_node.py", "sage_ros/managed_fusion_node.py", "sage_ros/node/", "sage_ros/harness/")
TRAINING_ONLY = ("sage_core.train", "sage_core.eval", "sage_core.cli", "segment_anything", "matplotlib",
                 "tensorboard")


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{p.relative_to(REPO)} imports {name}" for p in paths for name in sorted(imported_modules(p))
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def inference_path_files() -> list[Path]:
    """sage_core minus train/, eval/ and cli/: what the node and sage-fuse load."""
    skip = {"train", "eval", "cli"}
    return [p for p in python_files("sage_core") if not skip & set(p.relative_to(REPO / "sage_core").parts[:-1])]


def test_sage_core_never_imports_ros():
    assert violations(python_files("sage_core"), ROS) == []


def test_the_inference_path_never_imports_training_or_evaluation():
    assert violations(inference_path_files(), TRAINING_ONLY) == []


def test_evaluation_does_not_import_training_and_the_node_neither():
    assert violations(python_files("sage_core/eval"), ("sage_core.train", "sage_core.cli")) == []
    assert violations(python_files("sage_ros"), TRAINING_ONLY) == []  # the inference path only


def _in(path: Path, prefixes: tuple[str, ...]) -> bool:
    relative = path.relative_to(REPO).as_posix()
    return any(relative == p or (p.endswith("/") and relative.startswith(p)) for p in prefixes)


def test_only_the_ros_facing_layer_imports_rclpy_or_message_types():
    ros_free = [p for p in python_files("sage_ros") if not _in(p, ROS_FACING)]
    assert any(_in(p, ("sage_ros/stream/",)) for p in ros_free) and any(_in(p, ("sage_ros/codec/",)) for p in ros_free)
    assert violations(ros_free, ROS_PACKAGES) == []


@pytest.mark.parametrize("layer, forbidden", [
    ("sage_ros/codec", ("sage_ros.stream", "sage_ros.node", "sage_ros.bags", "sage_ros.harness")),
    ("sage_ros/stream", ("sage_ros.node", "sage_ros.bags", "sage_ros.harness")),
    ("sage_ros/node", ("sage_ros.bags", "sage_ros.harness")),
    ("sage_ros/bags", ("sage_ros.node", "sage_ros.harness", "sage_ros.fusion_node")),
])
def test_sage_ros_layers_import_downwards_only(layer, forbidden):
    assert violations(python_files(layer), forbidden) == []


def test_the_parameter_table_and_the_launch_file_load_no_torch_opencv_or_backend():
    """``ros2 launch`` may run in an interpreter without PyTorch: the launch file reads only the parameter table.
    launch / launch_ros are stood in by empty modules here (their own cost is not ours)."""
    code = ("import importlib.util, sys, types\n"
            "for name in ('launch', 'launch.actions', 'launch.substitutions', 'launch_ros', 'launch_ros.actions',\n"
            "             'launch_ros.substitutions'):\n"
            "    stub = lambda *args, **kwargs: (args, kwargs)\n"
            "    sys.modules[name] = types.SimpleNamespace(LaunchDescription=stub, DeclareLaunchArgument=stub,\n"
            "        OpaqueFunction=stub, LaunchConfiguration=stub, Node=stub, FindPackageShare=stub)\n"
            "import sage_ros.parameters\n"
            f"spec = importlib.util.spec_from_file_location('fusion_launch', {str(LAUNCH_FILE)!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "assert module.generate_launch_description()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'cv2', 'onnxruntime', 'rclpy')\n"
            "             or m.startswith('sage_core.backends')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("path", python_files(*CODE_FOLDERS), ids=lambda p: str(p.relative_to(REPO)))
def test_size_limits(path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{lines} lines (limit {MAX_MODULE_LINES}): split it by concept"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines"


@pytest.mark.parametrize("path", python_files("training", "benchmarks"), ids=lambda p: p.name)
def test_scripts_import_the_installed_package_without_path_edits(path):
    text = path.read_text()
    assert "sys.path" not in text and "noqa: E402" not in text


def test_training_scripts_are_thin_entries_to_the_cli():
    for script in (REPO / "training").glob("*.py"):
        assert f"from sage_core.cli.{script.stem} import main" in script.read_text(), script.name
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


def test_public_api_loads_no_training_or_evaluation_code():
    code = ("import sys\nfrom sage_core import Fuser, InferenceOptions, FramePipeline\n"
            "from sage_core.models import build_model\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('segment_anything', 'sage_core.train', "
            "'sage_core.eval', 'sage_core.cli', 'matplotlib', 'tensorboard', 'rclpy')))\nprint(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
