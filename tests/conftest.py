"""Test harness: every test's processes end with it, DDS stays on loopback in a domain per test, ../shared.

- Processes: the run adopts orphaned descendants, and after each test any process it started that is
  still running fails that test, named, and is killed (``tests/process_guard.py``).
- DDS: loopback-only discovery and the large-frame profile for the whole run; a test marked ``dds``
  (it starts rclpy, a node process or a launch) gets a domain claimed for it alone
  (``sage_ros.harness.dds.claim_domain``): no other test of this run, and no other run on this machine
  while it holds it, uses that domain. Any other test has ``ROS_DOMAIN_ID`` set to a value rclpy
  refuses, so a test that starts DDS without the mark fails at once instead of sharing a domain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sage_ros.harness.dds import CLAIMED_VARIABLE, claim_domain, set_dds_environment  # imports no rclpy
from tests.process_guard import become_subreaper, describe, kill_all, leaked_since, running_descendants

#: ROS_DOMAIN_ID of a test without the dds mark: rcl refuses it ("ROS_DOMAIN_ID is not an integral number").
NO_DOMAIN = "unmarked-test"

set_dds_environment(None)  # loopback discovery and the profile, before any test can start rclpy
os.environ.pop(CLAIMED_VARIABLE, None)
os.environ["ROS_DOMAIN_ID"] = NO_DOMAIN
become_subreaper()
# Compiled engines and ONNX files built by tests go to a cache of this run's own, not the user's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="sage_ros_test_cache_")

_RUNNING_BEFORE = pytest.StashKey[set]()
_DOMAIN = pytest.StashKey[object]()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "dds: the test starts DDS participants (rclpy, a node process, a "
                            "launch): it gets a DDS domain of its own")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_RUNNING_BEFORE] = set(running_descendants())
    if item.get_closest_marker("dds") is not None:
        claim = claim_domain()
        item.stash[_DOMAIN] = claim
        set_dds_environment(claim.domain_id)
    else:
        os.environ.pop(CLAIMED_VARIABLE, None)
        os.environ["ROS_DOMAIN_ID"] = NO_DOMAIN
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield  # the test's fixtures are finalised: whatever it started should be gone now
    leaked = leaked_since(item.stash.get(_RUNNING_BEFORE, set()))
    if leaked:
        names = "; ".join(describe(process) for process in leaked)
        kill_all(leaked)
    claim = item.stash.get(_DOMAIN, None)
    if claim is not None:
        claim.release()
    if leaked:
        raise AssertionError(f"{item.nodeid} left {len(leaked)} process(es) running after it ended "
                             f"(killed now): {names}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.excinfo is not None and "ROS_DOMAIN_ID is not an integral" in str(call.excinfo.value):
        report.sections.append(("sage_ros harness", f"{item.nodeid} starts rclpy without the dds mark: add "
                                "@pytest.mark.dds (or pytestmark = pytest.mark.dds) so it gets a DDS domain"))
    return report


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


#: The benchmark detector's graph, from benchmarks/downstream's pinned npm packages (bench_downstream.py).
CENTERNET_JSON = Path(__file__).resolve().parents[1] / "benchmarks" / "downstream" / "node_modules" / \
    "@vladmandic" / "human" / "models" / "centernet.json"


@pytest.fixture(scope="session")
def centernet_json() -> Path:
    """The CenterNet graph, installed once per run (``npm ci``) when missing: whether the tests that need it run
    must not depend on whether a test that installs it happened to run first. Skips only without node and npm."""
    if not CENTERNET_JSON.exists():
        missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"needs {' and '.join(missing)} on PATH for the benchmark detector's npm packages")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=CENTERNET_JSON.parents[4], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"npm ci in benchmarks/downstream failed: {done.stderr.strip()[-500:]}"
    return CENTERNET_JSON
