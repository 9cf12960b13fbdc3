"""The harness itself: a test that leaves a process running fails, named, and the process is killed; a test that
starts rclpy without the dds mark fails with the reason; DDS domains are claimed one per holder, in turn."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import psutil
import pytest

from sage_ros.harness import dds
from tests.conftest import REPO

INNER_TESTS = '''
import subprocess

import pytest


def test_leaves_an_orphan():
    subprocess.Popen(["sh", "-c", "sleep 97 & exit 0"])  # the shell exits at once: its sleep is orphaned


def test_starts_rclpy_unmarked():
    import rclpy

    rclpy.init(context=rclpy.Context())


@pytest.mark.dds
def test_marked_one():
    import os
    print("DOMAIN", os.environ["ROS_DOMAIN_ID"])


@pytest.mark.dds
def test_marked_two():
    import os
    print("DOMAIN", os.environ["ROS_DOMAIN_ID"])
'''


@pytest.fixture(scope="module")
def inner_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """A test session of its own, with this harness's conftest, over the tests above."""
    folder = tmp_path_factory.mktemp("inner")
    (folder / "conftest.py").write_text("from tests.conftest import *  # noqa: F403 - the harness under test\n"
                                        "from tests.conftest import pytest_configure, pytest_runtest_makereport, "
                                        "pytest_runtest_setup, pytest_runtest_teardown  # noqa: F401\n")
    (folder / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(folder)],
                          capture_output=True, text=True, timeout=180, env=env, cwd=folder)


def test_a_process_left_running_fails_its_test_by_name_and_is_killed(inner_run):
    out = inner_run.stdout
    assert inner_run.returncode != 0
    assert "ERROR at teardown of test_leaves_an_orphan" in out, out[-3000:]
    assert "test_inner.py::test_leaves_an_orphan left 1 process(es) running" in out and "sleep 97" in out
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "97"]]
    assert not leftovers


def test_rclpy_without_the_dds_mark_fails_with_the_reason(inner_run):
    out = inner_run.stdout
    assert "FAILED" in out and "test_starts_rclpy_unmarked" in out
    assert "starts rclpy without the dds mark" in out


def test_marked_tests_get_a_domain_each(inner_run):
    domains = re.findall(r"DOMAIN (\S+)", inner_run.stdout)
    assert len(domains) == 2 and len(set(domains)) == 2 and all(1 <= int(d) <= 232 for d in domains), domains
    assert "3 passed" in inner_run.stdout.splitlines()[-1]  # the two marked tests and the orphan's own call


def test_claims_go_round_and_skip_domains_held_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(dds, "_registry", lambda: tmp_path)
    first, second = dds.claim_domain(), dds.claim_domain()
    assert second.domain_id == first.domain_id + 1 or (first.domain_id, second.domain_id) == (232, 1)
    # Another process holds the next domain in turn: the claim passes over it.
    held = second.domain_id % 232 + 1
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\n"
                               f"f = open({str(tmp_path / f'{held}.lock')!r}, 'w')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        third = dds.claim_domain()
        assert third.domain_id == held % 232 + 1
    finally:
        holder.kill()
        holder.wait()
    first.release()
    # Released, it comes round again only after every other domain (here: the registry points past it).
    assert dds.claim_domain().domain_id not in (first.domain_id, second.domain_id, third.domain_id)


def test_a_process_keeps_the_domain_it_was_started_in(monkeypatch):
    # The started-in domain must differ from this process's own claim (any of 1..232, by the machine's registry):
    # a fixed number collided with it once in 232 runs.
    monkeypatch.setenv("ROS_DOMAIN_ID", "0")  # monkeypatch restores both variables, which isolate_dds sets
    monkeypatch.setenv(dds.CLAIMED_VARIABLE, "none")
    own = int(dds.isolate_dds()["ROS_DOMAIN_ID"])
    started_in = str(own % 232 + 1)
    monkeypatch.setenv("ROS_DOMAIN_ID", started_in)
    monkeypatch.setenv(dds.CLAIMED_VARIABLE, started_in)
    assert dds.isolate_dds()["ROS_DOMAIN_ID"] == started_in
    monkeypatch.setenv(dds.CLAIMED_VARIABLE, str(own))  # not the domain it is in: claim one of its own
    assert dds.isolate_dds()["ROS_DOMAIN_ID"] != started_in
