"""A throwaway ROS 2 workspace with this package built by colcon, and the real launch system beside it.

What a ROS 2 developer does: the package copied into ``<ws>/src/sage_ros``, ``colcon build`` (plain or
``--symlink-install``) with colcon-core and colcon-ros from PyPI, ``source install/setup.sh``, then the
installed executables and ``ros2 launch``. colcon lives in an environment of its own (run.sh's
``.venv-colcon``, found through ``SAGE_COLCON``); the real ``launch`` / ``launch_ros`` are the vendored
sources in ``../shared/vendor/ros2_launch`` (not installable here), put on ``PYTHONPATH`` with an empty
stand-in for ``composition_interfaces`` (composable nodes are not used).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO.parent / "shared" / "vendor" / "ros2_launch"
# What a clone of the package holds besides its sources: environments and outputs never go into src/.
NOT_COPIED = shutil.ignore_patterns(".git", ".venv*", "build", "install", "log", "out", "runs", "__pycache__",
                                    "*.egg-info", ".pytest_cache", ".hypothesis", "node_modules", ".ruff_cache")
#: What the test harness sets per test (conftest.py): taken from the test that runs a command, not from the cache.
DDS_VARIABLES = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "SAGE_ROS_CLAIMED_DOMAIN_ID")
EXECUTABLES = ("fusion_node", "managed_fusion_node", "sage-fuse", "sage-calibrate", "sage-demo")


def colcon_command() -> str:
    """The colcon executable run.sh made (``SAGE_COLCON``); skips the test when there is none."""
    colcon = os.environ.get("SAGE_COLCON") or str(REPO / ".venv-colcon" / "bin" / "colcon")
    if not Path(colcon).is_file():
        pytest.skip(f"no colcon at {colcon}: run the tests with ./run.sh test, which creates .venv-colcon")
    return str(Path(colcon).absolute())


class Workspace:
    """``<root>/src/sage_ros`` built into ``<root>/install``; :meth:`run` runs a command in its sourced env."""

    def __init__(self, root: Path, symlink_install: bool) -> None:
        self.root, self.symlink_install = root, symlink_install
        self.source = root / "src" / "sage_ros"
        self.install = root / "install" / "sage_ros"

    def build(self, colcon: str) -> subprocess.CompletedProcess:
        shutil.copytree(REPO, self.source, ignore=NOT_COPIED)
        args = [colcon, "build", "--event-handlers", "console_direct-"]
        if self.symlink_install:
            args.append("--symlink-install")
        # colcon's own environment must not leak into the build: it runs setup.py with its own Python.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(args, cwd=self.root, env=env, capture_output=True, text=True, timeout=300)

    @functools.cached_property
    def _sourced(self) -> dict[str, str]:
        """The variables ``source install/setup.sh`` sets, read back from a shell once."""
        shell = f". {shlex.quote(str(self.root / 'install' / 'setup.sh'))} && env -0"
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
        out = subprocess.run(["sh", "-c", shell], env=base, capture_output=True, check=True, timeout=60).stdout
        return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)

    def environment(self, extra_pythonpath: list[Path] = ()) -> dict[str, str]:
        """The sourced workspace's variables (plus ``extra_pythonpath`` in front of its PYTHONPATH), with the
        calling test's DDS domain and the Fast DDS profile as the workspace installed it, where a user finds it."""
        env = dict(self._sourced)
        env.update({name: os.environ[name] for name in DDS_VARIABLES if name in os.environ})
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(self.share("config", "fastdds_loopback.xml"))
        if extra_pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_pythonpath), env.get("PYTHONPATH", "")])
        return env

    def executable(self, name: str) -> Path:
        return self.install / "lib" / "sage_ros" / name

    def share(self, *parts: str) -> Path:
        return self.install.joinpath("share", "sage_ros", *parts)


def launch_pythonpath(stub_root: Path) -> list[Path]:
    """PYTHONPATH entries for the vendored launch / launch_ros; skips when ../shared lacks them."""
    if not (VENDOR / "launch" / "launch").is_dir():
        pytest.skip(f"the real launch system is not at {VENDOR} (../shared/vendor/ros2_launch)")
    stub = stub_root / "composition_interfaces"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text("")
    # launch_ros imports composition_interfaces.srv for composable nodes, which this package does not use.
    (stub / "srv.py").write_text("class LoadNode:\n    class Request:\n        pass\n")
    return [VENDOR / "launch", VENDOR / "launch_ros", stub_root]


_BUILT: dict[bool, Workspace] = {}


def built_workspace(tmp_path_factory, symlink_install: bool) -> Workspace:
    """A workspace built once per mode and test session (the session fixtures call this)."""
    if symlink_install in _BUILT:
        return _BUILT[symlink_install]
    colcon = colcon_command()
    root = tmp_path_factory.mktemp("symlink_ws" if symlink_install else "ws")
    workspace = Workspace(root, symlink_install)
    result = workspace.build(colcon)
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    _BUILT[symlink_install] = workspace
    return workspace
