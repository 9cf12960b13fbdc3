"""Test harness: keeps DDS on loopback with a domain of its own, and locates ../shared.

The ROS variables are set here, at import, before any test can start rclpy, so
that no test run ever multicasts discovery on an external interface.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from sage_ros.harness.dds import isolate_dds  # imports no rclpy

# Loopback only, and a domain of this run's own (valid Fast DDS domains: 0..232).
isolate_dds()
# Compiled engines and ONNX files built by tests go to a cache of this run's own, not the user's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="sage_ros_test_cache_")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATASETS = SHARED / "datasets"
OFFICIAL_CHECKPOINT = SHARED / "checkpoints" / "sage_official_student.pt"


def require_shared(path: Path) -> Path:
    """Skip the calling test, with the reason, when a ../shared resource is absent."""
    if not path.exists():
        pytest.skip(f"needs {path} (the shared datasets/checkpoints beside the checkout), which is absent")
    return path


@pytest.fixture(scope="session")
def official_checkpoint() -> Path:
    return require_shared(OFFICIAL_CHECKPOINT)


@pytest.fixture(scope="session")
def m3fd() -> Path:
    return require_shared(DATASETS / "m3fd_sage6")


@pytest.fixture(scope="session")
def tno() -> Path:
    return require_shared(DATASETS / "tno25")


@pytest.fixture(scope="session", params=[False, True], ids=["colcon-build", "colcon-symlink-install"])
def ros_workspace(request, tmp_path_factory):
    """The package built by colcon in a throwaway workspace, plainly and with --symlink-install."""
    from tests.ros_workspace import built_workspace

    return built_workspace(tmp_path_factory, symlink_install=request.param)


@pytest.fixture(scope="session")
def symlink_workspace(tmp_path_factory):
    """The developer's build (--symlink-install), for the launch tests."""
    from tests.ros_workspace import built_workspace

    return built_workspace(tmp_path_factory, symlink_install=True)
