"""A message header without ROS: the stamp and frame_id every image, fused frame and camera_info carries.

The node's raw subscriptions, the bag tool and the harness all build these; rclpy's own
``std_msgs/Header`` (compressed subscriptions) has the same attributes, so everything downstream reads
either. The node converts to rclpy's type only where a message constructor insists
(``node/fused_outputs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    stamp: Stamp
    frame_id: str = ""

    @classmethod
    def at(cls, stamp_ns: int, frame_id: str = "") -> Header:
        sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
        return cls(Stamp(sec, nanosec), frame_id)


@dataclass(frozen=True)
class LoggedHeader(Header):
    """A recorded message's header, plus when the recorder logged it (the bag's log time)."""

    log_ns: int = 0


def stamp_ns(header) -> int:
    """A header's stamp in nanoseconds (ours, rclpy's or rosbags')."""
    return header.stamp.sec * NS_PER_S + header.stamp.nanosec
