"""Keeping DDS on this machine: loopback-only discovery, a domain of the run's own, large SHM segments.

Fast DDS announces itself by multicast on every interface unless told otherwise, and drops
best-effort messages larger than its 512 KB default shared-memory segment (a 640x512 bgr8 frame is
983 KB). :func:`isolate_dds` fixes both for this process and the processes it starts; the demo,
benchmarks and tests call it before anything starts rclpy. Imports no ROS.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Fast DDS profile: shared memory with 64 MB segments, UDP bound to 127.0.0.1 (see the file's comment).
FASTDDS_LOOPBACK_PROFILE = Path(__file__).resolve().parent / "fastdds_loopback.xml"


def isolate_dds(domain_id: int | None = None) -> dict[str, str]:
    """Keep DDS on loopback, in a domain of this run's own; returns the variables set.

    Must run before anything in the process starts rclpy; child processes inherit it.
    """
    values = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(domain_id if domain_id is not None else 100 + os.getpid() % 100),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_LOOPBACK_PROFILE),
    }
    os.environ.update(values)
    os.environ.pop("ROS_STATIC_PEERS", None)
    return values
