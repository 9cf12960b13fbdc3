"""Every process a test starts ends with that test: the check the conftest runs around every test.

The test run makes itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``): a process whose parent
dies (a node left behind by a killed ``ros2 launch``) is re-parented to the run, not to PID 1, so the
run's descendants are exactly the processes its tests started, orphans included. After each test,
any descendant still running that was not there before the test is a leak: the test fails, naming each
process, and the processes are killed so that they cannot disturb the tests after it. Exited children
nobody waited for are reaped.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing.resource_tracker
import os
import signal
import subprocess
import sys

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux); False where the kernel offers no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _infrastructure() -> set[int]:
    """Processes the run keeps on purpose: multiprocessing's resource tracker (started by the first
    ``spawn`` child, it lives as long as the run)."""
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    pid = getattr(tracker, "_pid", None)
    return {pid} if pid else set()


def running_descendants() -> dict[int, psutil.Process]:
    """This run's descendants that are running (zombies excluded, and reaped), by pid.

    Scanned again after each reaped zombie: a process that exited between two reads of the process table may
    have left a child (now re-parented to this run) that the first scan could not see."""
    while True:
        found, reaped = {}, False
        for process in psutil.Process().children(recursive=True):
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    _reap(process.pid)
                    reaped = True
                elif process.pid not in _infrastructure():
                    found[process.pid] = process
            except psutil.NoSuchProcess:
                reaped = True  # gone meanwhile: its children, if any, moved
        if not reaped:
            return found


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not ours to wait for (a grandchild's zombie): its parent will
        os.waitpid(pid, os.WNOHANG)


def describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid}: {' '.join(process.cmdline())[:300]}"
    except psutil.Error:
        return f"pid {process.pid} (gone while being described)"


def kill_all(processes: list[psutil.Process], wait_s: float = 5.0) -> None:
    """SIGKILL ``processes`` and wait for them (each is ours: a descendant of the run)."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=wait_s)
    for process in processes:
        _reap(process.pid)


def leaked_since(before: set[int], grace_s: float = 2.0) -> list[psutil.Process]:
    """Descendants running now that were not running when ``before`` was taken, after ``grace_s`` for those on
    their way out (signalled, not yet waited for) to finish."""
    leaked = [process for pid, process in sorted(running_descendants().items()) if pid not in before]
    if leaked:
        psutil.wait_procs(leaked, timeout=grace_s)
        leaked = [process for pid, process in sorted(running_descendants().items()) if pid not in before]
    return leaked


def _group_members(pgid: int) -> list[psutil.Process]:
    """Running processes of process group ``pgid`` (zombies reaped where they are ours)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) != pgid:
                continue
            if process.status() == psutil.STATUS_ZOMBIE:
                _reap(process.pid)
            else:
                members.append(process)
        except (psutil.Error, ProcessLookupError):
            pass
    return members


def stop_process_group(process, grace_s: float = 30.0) -> str:
    """Stop a process started with ``start_new_session=True`` and everything it started, as Ctrl-C in its
    terminal does: SIGINT to the whole group at once, then wait for every member up to ``grace_s``; SIGKILL
    only for what is left after that. Returns what the process wrote to its (piped) stdout."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        output = None
    remaining = psutil.wait_procs(_group_members(pgid), timeout=max(1.0, grace_s / 2))[1]
    if output is None or remaining:
        kill_all([*_group_members(pgid)])
        if output is None:
            output, _ = process.communicate()
    return output or ""
