"""The node's topic names, relative (a namespace and remaps move them), in image_transport's naming.

One place for the names the node subscribes and publishes, the bag tool writes, and the harness and
tests talk to. Imports nothing.
"""

from __future__ import annotations

FUSED_IMAGE = "fused/image"
FUSED_COMPRESSED = "fused/image/compressed"
FUSED_CAMERA_INFO = "fused/camera_info"
DIAGNOSTICS = "/diagnostics"


def image_topic(camera_label: str) -> str:
    """``thermal/image`` or ``rgb/image``: a camera's base image topic."""
    return f"{camera_label}/image"


def camera_info_topic(camera_label: str) -> str:
    return f"{camera_label}/camera_info"


def transport_topic(base: str, transport: str) -> str:
    """image_transport naming: the raw transport is the base topic, the others ``<base>/<transport>``."""
    return base if transport == "raw" else f"{base}/{transport}"
