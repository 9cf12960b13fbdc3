"""Keeping DDS on this machine: loopback-only discovery, a domain nobody else is using, large SHM segments.

Fast DDS announces itself by multicast on every interface unless told otherwise, and drops
best-effort messages larger than its 512 KB default shared-memory segment (a 640x512 bgr8 frame is
983 KB). :func:`isolate_dds` fixes both for this process and the processes it starts, and gives it a
DDS domain of its own; the demo, benchmarks and tests call it before anything starts rclpy.

Domains are claimed through lock files (:func:`claim_domain`): a domain is held while the process that
claimed it lives, and the next claim on this machine takes the next free domain in turn, so concurrent
runs never share one and a run of many tests uses each domain once before any comes round again.
Imports no ROS.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sage_ros.dds_profile import FASTDDS_PROFILE

#: Domains handed out. 0 is ROS's default (a developer's robot may be on it); Fast DDS's ports end at 232.
DOMAINS = range(1, 233)
#: Set with ROS_DOMAIN_ID by whoever claimed that domain; processes started under it keep it.
CLAIMED_VARIABLE = "SAGE_ROS_CLAIMED_DOMAIN_ID"
#: The user's own domain (where their robot may be), as this process found it: never handed out.
_USER_DOMAIN = None if CLAIMED_VARIABLE in os.environ else os.environ.get("ROS_DOMAIN_ID")


@dataclass
class DomainClaim:
    """A DDS domain held by this process (an exclusive lock on its file) until :meth:`release` or exit."""

    domain_id: int
    _fd: int | None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None


def _registry() -> Path:
    folder = Path(tempfile.gettempdir()) / f"sage_ros_dds_domains_{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _try_lock(path: Path, create: bool = True) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``, or None when another process holds it."""
    fd = os.open(path, (os.O_CREAT if create else 0) | os.O_RDWR, 0o600)  # not inherited by child processes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_domain() -> DomainClaim:
    """The next DDS domain after the last one claimed on this machine that no live process holds.

    The user's own ``ROS_DOMAIN_ID`` (where their robot is) is never handed out."""
    registry = _registry()
    counter = os.open(registry / "next", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(counter, fcntl.LOCK_EX)  # one claim at a time on this machine
        text = os.pread(counter, 16, 0).decode().strip()
        start = int(text) if text.isdigit() else os.getpid()
        for step in range(len(DOMAINS)):
            index = (start + step) % len(DOMAINS)
            domain = DOMAINS[index]
            if str(domain) == _USER_DOMAIN:
                continue
            fd = _try_lock(registry / f"{domain}.lock")
            if fd is not None:
                os.ftruncate(counter, 0)
                os.pwrite(counter, str(index + 1).encode(), 0)
                return DomainClaim(domain, fd)
    finally:
        os.close(counter)  # and with it the counter's lock
    raise RuntimeError(f"every DDS domain {DOMAINS.start}..{DOMAINS.stop - 1} is held by another process on "
                       f"this machine (lock files in {registry})")


def set_dds_environment(domain_id: int | None) -> dict[str, str]:
    """Loopback discovery and the large-frame profile for this process and its children, and ``domain_id``
    as the domain it claimed (None: the domain is left as it is); returns the variables set."""
    values = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE)}
    if domain_id is not None:
        values.update({"ROS_DOMAIN_ID": str(domain_id), CLAIMED_VARIABLE: str(domain_id)})
    os.environ.update(values)
    os.environ.pop("ROS_STATIC_PEERS", None)
    return values


_process_claim: DomainClaim | None = None


def isolate_dds(domain_id: int | None = None) -> dict[str, str]:
    """Keep DDS on loopback, in a domain of this process's own; returns the variables set.

    Without ``domain_id``: the domain already claimed for this process (by itself, or by the process that
    started it, which set ``SAGE_ROS_CLAIMED_DOMAIN_ID``), else a new claim held until the process exits.
    Must run before anything in the process starts rclpy; child processes inherit it.
    """
    global _process_claim
    if domain_id is None:
        inherited = os.environ.get(CLAIMED_VARIABLE)
        if inherited is not None and inherited == os.environ.get("ROS_DOMAIN_ID"):
            domain_id = int(inherited)
        else:
            _process_claim = _process_claim or claim_domain()
            domain_id = _process_claim.domain_id
    return set_dds_environment(domain_id)


#: Where Fast DDS keeps its shared-memory segments and ports on Linux.
SHM_DIR = Path("/dev/shm")


def stale_shm_files(min_age_s: float = 10.0, folder: Path = SHM_DIR) -> list[Path]:
    """Fast DDS shared-memory files whose owner process no longer exists (one killed with SIGKILL).

    Each Fast DDS segment or port has a lock file (``fastdds_*_el`` or ``*_sl``) that its owner holds
    (``flock``) for as long as it lives: a lock nobody holds belongs to a dead process. Files younger than
    ``min_age_s`` are left alone, since a participant starting now creates its lock file just before locking it.
    """
    stale = []
    now = time.time()
    for lock in sorted([*folder.glob("fastdds_*_el"), *folder.glob("fastdds_*_sl")]):
        try:
            if now - lock.stat().st_mtime < min_age_s:
                continue
            fd = _try_lock(lock, create=False)
        except OSError:  # gone meanwhile, or not ours to open
            continue
        if fd is None:  # held: its owner lives
            continue
        os.close(fd)
        data = lock.with_name(lock.name[:-3])
        stale += [lock, data, folder / f"sem.{data.name}_mutex"]  # a port also has a named semaphore
    return [path for path in stale if path.exists()]


def remove_stale_shm_files(min_age_s: float = 10.0) -> list[Path]:
    """Remove what :func:`stale_shm_files` finds (only files of processes that no longer exist); the paths."""
    removed = []
    for path in stale_shm_files(min_age_s):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
