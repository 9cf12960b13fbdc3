"""The node's topic names, relative (a namespace and remaps move them), in image_transport's naming.

One place for the names the node subscribes and publishes, the bag tool writes, and the harness and
tests talk to. Imports nothing.
"""

from __future__ import annotations

FUSED_IMAGE = "fused/image"
FUSED_COMPRESSED = "fused/image/compressed"
FUSED_CAMERA_INFO = "fused/camera_info"
#: The second stream, for machines (``detection_stream``): the detection model's frames of the same pairs.
DETECTION_IMAGE = "detection/image"
DIAGNOSTICS = "/diagnostics"
#: The optional depth image registered to the rgb camera (use_depth); its camera_info is the sibling, as for images.
DEPTH_IMAGE = "rgb/depth"


def image_topic(camera_label: str) -> str:
    """``thermal/image`` or ``rgb/image``: a camera's base image topic."""
    return f"{camera_label}/image"


def camera_info_topic(camera_label: str) -> str:
    return f"{camera_label}/camera_info"


def transport_topic(base: str, transport: str) -> str:
    """image_transport naming: the raw transport is the base topic, the others ``<base>/<transport>``.

    Give it the *resolved* base (the node's ``resolve_topic_name``, remaps applied) as image_transport
    does since Kilted, so that one remap of the base topic moves every transport with it."""
    return base if transport == "raw" else f"{base}/{transport}"


def sibling_camera_info(image: str) -> str:
    """The camera_info topic beside an image topic, as ``image_transport::CameraSubscriber`` derives it:
    ``/front/flir/image`` -> ``/front/flir/camera_info``, ``image`` -> ``camera_info``."""
    head = image.rsplit("/", 1)[0] if "/" in image else None
    if head is None:
        return "camera_info"
    return f"{head}/camera_info"
