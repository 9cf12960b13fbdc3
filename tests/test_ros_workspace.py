"""The package in a ROS 2 workspace: colcon build (plain and --symlink-install), the installed executables,
the launch file's arguments, as a ROS 2 developer gets them (``ros2 run`` runs ``lib/sage_ros/<name>``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.ros_workspace import EXECUTABLES, launch_pythonpath


def run(workspace, command: list[str], extra_pythonpath=(), timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=workspace.environment(extra_pythonpath), capture_output=True, text=True,
                          timeout=timeout, cwd=workspace.root)


def test_colcon_installs_the_executables_and_share_files(ros_workspace):
    for name in EXECUTABLES:
        assert ros_workspace.executable(name).is_file(), name
    for part in ("package.xml", "launch/fusion.launch.py", "config/fusion.yaml", "rviz/fusion.rviz",
                 "config/fastdds_loopback.xml"):
        assert ros_workspace.share(*part.split("/")).is_file(), part
    marker = ros_workspace.install / "share" / "ament_index" / "resource_index" / "packages" / "sage_ros"
    assert marker.is_file()  # what ament_index (ros2 run / launch's FindPackageShare) finds the package by


def test_the_installed_package_is_the_one_python_imports(ros_workspace):
    result = run(ros_workspace, [sys.executable, "-c", "import sage_ros, sage_core; print(sage_ros.__file__); "
                                                       "print(sage_core.__file__)"])
    assert result.returncode == 0, result.stderr
    for line in result.stdout.split():
        # --symlink-install: build/sage_ros links back into src/ (edits apply without a rebuild); plain: install/
        assert line.startswith(str(ros_workspace.root)), line
        if ros_workspace.symlink_install:
            assert str(Path(line).resolve()).startswith(str(ros_workspace.source)), line


@pytest.mark.parametrize("name", ["fusion_node", "managed_fusion_node"])
def test_installed_node_executables_answer_help_without_starting(ros_workspace, name):
    result = run(ros_workspace, [str(ros_workspace.executable(name)), "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{name}: ") and "thermal_transport:" in result.stdout


@pytest.mark.parametrize("name", ["sage-fuse", "sage-calibrate", "sage-demo"])
def test_installed_tools_run(ros_workspace, name):
    result = run(ros_workspace, [str(ros_workspace.executable(name)), "--help"])
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


@pytest.mark.parametrize("name", ["fusion_node", "managed_fusion_node"])
def test_installed_node_prints_the_installed_fast_dds_profile(ros_workspace, name):
    result = run(ros_workspace, [str(ros_workspace.executable(name)), "--dds-profile"])
    assert result.returncode == 0, result.stderr
    printed = Path(result.stdout.strip())
    assert printed.is_file() and str(printed).startswith(str(ros_workspace.root)), printed
    shared = ros_workspace.share("config", "fastdds_loopback.xml")
    assert printed.read_bytes() == shared.read_bytes() and b"<segment_size>" in shared.read_bytes()


@pytest.mark.dds  # it starts rclpy before the parameter is refused
def test_installed_fusion_node_refuses_a_bad_parameter_with_one_line(ros_workspace):
    result = run(ros_workspace, [str(ros_workspace.executable("fusion_node")), "--ros-args", "-p", "slop:=-1.0"])
    assert result.returncode == 2
    assert "fusion_node: error:" in result.stderr and "slop" in result.stderr


def test_installed_launch_file_declares_its_arguments_and_imports_no_torch(ros_workspace, tmp_path):
    script = (
        "import sys\n"
        "from launch.launch_description_sources import PythonLaunchDescriptionSource\n"
        "from ament_index_python.packages import get_package_share_directory\n"
        "path = get_package_share_directory('sage_ros') + '/launch/fusion.launch.py'\n"
        "from launch import LaunchContext\n"
        "description = PythonLaunchDescriptionSource(path).get_launch_description(LaunchContext())\n"
        "print(path)\n"
        "print(' '.join(sorted(a.name for a in description.get_launch_arguments())))\n"
        "print('torch' in sys.modules, 'cv2' in sys.modules)\n")
    result = run(ros_workspace, [sys.executable, "-c", script], launch_pythonpath(tmp_path / "stub"))
    assert result.returncode == 0, result.stderr
    path, names, imported = result.stdout.strip().splitlines()
    assert path == str(ros_workspace.share("launch", "fusion.launch.py"))
    assert {"namespace", "thermal_topic", "managed", "use_sim_time", "log_level", "rviz", "slop"} <= set(names.split())
    assert imported == "False False"
