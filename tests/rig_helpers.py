"""A small rendered thermal + RGB-D rig for the node and bag tests: images, camera_info fields, the parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sage_core.parallax_scene import ParallaxScene, Person, depth_image, make_rig
from sage_core.rig import Rig

RGB_SIZE, THERMAL_SIZE = (160, 120), (160, 128)
BASELINE = 0.06


@dataclass
class RigFrames:
    rig: Rig
    thermal: np.ndarray  # mono16
    rgb: np.ndarray  # bgr8
    depth: np.ndarray  # 16UC1 millimetres

    @property
    def params(self) -> dict:
        """The node's parameters for this rig (thermal straight to the right of the rgb camera)."""
        return {"rig_translation": [BASELINE, 0.0, 0.0], "rig_rotation": [0.0, 0.0, 0.0, 1.0]}

    def camera_info(self, camera: str) -> dict:
        """CameraInfo fields of ``camera`` (thermal, rgb): pinhole, no distortion."""
        view = self.rig.thermal if camera == "thermal" else self.rig.rgb
        k = view.k.ravel().tolist()
        p = np.column_stack([view.k, np.zeros(3)]).ravel().tolist()
        return {"width": view.size[0], "height": view.size[1], "distortion_model": "plumb_bob", "d": [0.0] * 5,
                "k": k, "r": np.eye(3).ravel().tolist(), "p": p, "binning_x": 0, "binning_y": 0}


def near_person(seed: int = 0, distance: float = 1.2) -> RigFrames:
    """A person ``distance`` m away in front of a wall at 6 m, as the rig's thermal, rgb and depth cameras see them."""
    rig = make_rig(RGB_SIZE, THERMAL_SIZE, baseline=BASELINE, yaw_deg=0.0, roll_deg=0.0)
    scene = ParallaxScene([Person(0.1 * (seed % 3) - 0.1, distance)], wall=6.0, seed=seed)
    rendered = scene.render(rig)
    return RigFrames(rig, rendered.thermal, rendered.rgb, depth_image(scene, rendered, seed=seed))


def parallax_px(frames: RigFrames, depth: float) -> float:
    return frames.rig.parallax_px(depth, math.inf)
