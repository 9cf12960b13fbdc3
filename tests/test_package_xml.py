"""package.xml declares every dependency with a key rosdep resolves (rosdep's key lists and the ROS packages of
Humble, Jazzy and Kilted in ../shared/rosdep/), and every ROS package the code imports."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED, require_shared
from tests.test_architecture import imported_modules, python_files

REPO = Path(__file__).resolve().parents[1]
DEPEND_TAGS = ("depend", "exec_depend", "build_depend", "test_depend")
#: Python imports that are ROS packages (their rosdep key is the package name).
ROS_IMPORTS = ("rclpy", "sensor_msgs", "std_msgs", "builtin_interfaces", "diagnostic_msgs", "lifecycle_msgs",
               "rcl_interfaces", "launch", "launch_ros", "rosgraph_msgs")


def keys() -> dict[str, str]:
    root = ElementTree.parse(REPO / "package.xml").getroot()
    return {element.text.strip(): element.tag for tag in DEPEND_TAGS for element in root.iter(tag)}


@pytest.mark.parametrize("distro", ["humble", "jazzy", "kilted"])
def test_every_key_resolves_in_each_distribution(distro):
    folder = require_shared(SHARED / "rosdep")
    rules = {}
    for name in ("base.yaml", "python.yaml"):
        rules.update(yaml.safe_load((folder / name).read_text()))
    packages = set((folder / f"ros_packages_{distro}.txt").read_text().split())
    unresolved = sorted(k for k in keys() if k not in rules and k not in packages)
    assert unresolved == []


def test_every_ros_package_the_code_imports_is_declared():
    used = {name.split(".")[0] for path in python_files("sage_ros", "launch", "tests")
            for name in imported_modules(path)} & set(ROS_IMPORTS)
    assert used - set(keys()) == set()
    assert {"python3-torch", "python3-onnxruntime-pip", "python3-rosbags-pip"} <= set(keys())
