"""Launch file, parameter file and rviz view agree with the node's declared parameters."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "fusion.launch.py"


def _launch_tables() -> tuple[list, dict]:
    """ARGUMENTS and PARAMETER_ARGUMENTS read from the launch file's source (no `launch` needed)."""
    tree = ast.parse(LAUNCH.read_text())
    tables = {}
    for node in tree.body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id in ("ARGUMENTS", "PARAMETER_ARGUMENTS"):
            tables[target.id] = node.value
    arguments = ast.literal_eval(tables["ARGUMENTS"])
    parameter_args = {key.value: value.id for key, value in zip(tables["PARAMETER_ARGUMENTS"].keys,
                                                                tables["PARAMETER_ARGUMENTS"].values)}
    return arguments, parameter_args


def test_every_launch_argument_is_described_and_maps_to_a_real_parameter():
    pytest.importorskip("rclpy", reason="node parameters need rclpy")
    from sage_ros.parameters import SPEC_BY_NAME

    arguments, parameter_args = _launch_tables()
    names = [name for name, _, _ in arguments]
    assert len(names) == len(set(names))
    assert all(description.strip() for _, _, description in arguments)
    assert {"namespace", "params_file", "rviz", "thermal_topic", "rgb_topic", "fused_topic"} <= set(names)
    for name, kind in parameter_args.items():
        assert name in names, f"{name} is passed to the node but not declared"
        assert name in SPEC_BY_NAME, f"{name} is not a node parameter"
        assert kind == type(SPEC_BY_NAME[name].default).__name__


def test_parameter_file_holds_every_parameter_with_valid_values():
    pytest.importorskip("rclpy", reason="node parameters need rclpy")
    from sage_ros.parameters import SPECS, check_value

    values = yaml.safe_load((REPO / "config" / "fusion.yaml").read_text())["/**"]["ros__parameters"]
    assert set(values) == {spec.name for spec in SPECS}
    for spec in SPECS:
        assert type(values[spec.name]) is type(spec.default), spec.name
        check_value(spec, values[spec.name])
        assert values[spec.name] == spec.default, f"{spec.name}: file and declared default disagree"


def test_rviz_view_shows_thermal_rgb_and_fused():
    view = yaml.safe_load((REPO / "rviz" / "fusion.rviz").read_text())
    displays = view["Visualization Manager"]["Displays"]
    topics = {d["Name"]: d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert topics == {"Thermal": "/thermal/image", "RGB": "/rgb/image", "Fused": "/fused/image"}
    launch_source = LAUNCH.read_text()
    for topic in topics.values():  # the launch file rewrites exactly these for namespaces and remaps
        assert f'"{topic}"' in launch_source


def test_launch_description_loads_when_launch_is_installed():
    pytest.importorskip("launch_ros", reason="launch / launch_ros are not installed here (they come with ROS 2)")
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("fusion_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = [e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert declared == [name for name, _, _ in module.ARGUMENTS]
    assert module._sibling("/boson/image_raw", "camera_info") == "/boson/camera_info"
    assert module._absolute("thermal/image", "front") == "/front/thermal/image"


def test_wheel_installs_share_files_weights_and_executables(tmp_path):
    """What colcon and pip install: share/ files, the ament index marker, weights, console scripts."""
    import subprocess
    import sys
    import zipfile

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("sage_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split("/")[0] for n in names if n.endswith(".data/data/share/sage_ros/package.xml"))
    for path in ("share/ament_index/resource_index/packages/sage_ros", "share/sage_ros/launch/fusion.launch.py",
                 "share/sage_ros/config/fusion.yaml", "share/sage_ros/rviz/fusion.rviz"):
        assert f"{data}/data/{path}" in names, path
    assert {"sage_core/weights/affine_fuse_default.pt", "sage_ros/fastdds_loopback.xml"} <= names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for script in ("sage-fuse = sage_core.cli.fuse:main", "sage-demo = sage_ros.demo:main",
                   "fusion_node = sage_ros.fusion_node:main"):
        assert script in entry_points
    cfg = (REPO / "setup.cfg").read_text()  # colcon: executables where `ros2 run` looks
    assert "script_dir=$base/lib/sage_ros" in cfg and "install_scripts=$base/lib/sage_ros" in cfg
