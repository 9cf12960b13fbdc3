"""The fused image's camera_info: the reference camera's, with the intrinsics cropped and scaled like the image.

One function for the node (rclpy ``CameraInfo``) and the bag tool (rosbags' dataclass): both have the
same fields, and what changes between the reference camera and the fused image is only the crop and
resize the aligner applied (``AlignmentPlan``), which moves the principal point and scales the focal
lengths.
"""

from __future__ import annotations

from sage_core.alignment import transform_intrinsics


def fused_camera_info_fields(info, plan, height: int, width: int) -> dict:
    """The fields (``height width distortion_model d r k p binning_x binning_y``) of the fused image's
    CameraInfo, from the reference camera's ``info`` and the aligner's ``plan`` for this pair."""
    k, p = transform_intrinsics([float(v) for v in info.k], [float(v) for v in info.p], plan)
    return {"height": int(height), "width": int(width), "distortion_model": info.distortion_model,
            "d": [float(v) for v in info.d], "r": [float(v) for v in info.r], "k": k, "p": p,
            "binning_x": int(info.binning_x), "binning_y": int(info.binning_y)}
