"""The rig's node parameters checked against each other and the homography ones (``parameters.py`` asks).

Apart from the table so that it stays one page; like it, this imports no ROS, PyTorch or OpenCV.
"""

from __future__ import annotations

from sage_core.errors import ConfigError


def check_rig_rules(params) -> None:
    """ConfigError unless the rig's parameters of ``params`` (a FusionParams) agree with each other and with the
    homography ones."""
    if len(params.rig_translation) not in (1, 3) or len(params.rig_rotation) != 4:
        raise ConfigError(f"parameters rig_translation and rig_rotation: expected 3 numbers (metres) and 4 (a "
                          f"quaternion x, y, z, w), got {params.rig_translation} and {params.rig_rotation}")
    if params.rig_file and params.rig_extrinsics() is not None:
        raise ConfigError("parameters rig_file and rig_translation: give the rig one way, not both")
    if not params.has_rig:
        if params.use_depth:
            raise ConfigError("parameter use_depth: per-pixel registration needs the rig's geometry: set rig_file "
                          "or rig_translation (and rig_rotation)")
        return
    params.rig_extrinsics()  # checked: a rotation, a baseline under 1 m
    for name, on in (("homography", params.homography_matrix), ("auto_align", params.auto_align)):
        if on:
            raise ConfigError(f"parameters {name} and the rig: the rig's extrinsics and registration_distance "
                              "register the cameras; set one or the other")
    if params.use_depth and params.reference_camera != "rgb":
        raise ConfigError("parameters use_depth and reference_camera: the depth image is on the rgb camera's grid, "
                          "so the rgb camera must be the reference (reference_camera: rgb)")
