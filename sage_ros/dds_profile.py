"""The Fast DDS profile for camera-sized images between processes on one computer, and where it is installed.

Fast DDS's default shared-memory segment is 512 KB: best-effort images larger than that (a 640x512
``bgr8`` frame is 983 KB) are silently dropped between processes on one computer. The profile uses
64 MB segments and binds UDP to 127.0.0.1. Every process of the pipeline (camera drivers, the fusion
node, recorders, rviz) loads it::

    export FASTDDS_DEFAULT_PROFILES_FILE=$(ros2 run sage_ros fusion_node --dds-profile)  # colcon
    export FASTDDS_DEFAULT_PROFILES_FILE=$(fusion_node --dds-profile)                    # pip

It is installed with the package (``share/sage_ros/config/fastdds_loopback.xml`` under colcon's and pip's
prefix, and beside this module); the demo, benchmarks and tests load it from here too. Imports nothing.
"""

from __future__ import annotations

from pathlib import Path

#: The profile file (inside the installed package; the same file is in share/sage_ros/config).
FASTDDS_PROFILE = Path(__file__).resolve().parent / "fastdds_loopback.xml"
