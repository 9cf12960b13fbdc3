"""Thermal + RGB pairs to publish: the generated night street, a rendered rig with a baseline (with the rgb
camera's depth and both camera_infos), or a dataset folder's pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sage_core.image_files import dataset_pairs, read_pair
from sage_core.synthetic import SyntheticScene
from sage_core.video_files import is_clip, read_clip

#: Thermal stamped this far behind RGB: a realistic offset that approximate-time pairing must absorb.
THERMAL_OFFSET_NS = 3_000_000


@dataclass
class InputPair:
    thermal: np.ndarray  # as published (mono16 or mono8)
    thermal_encoding: str
    visible: np.ndarray  # BGR uint8
    depth: np.ndarray | None = None  # the rgb camera's depth (16UC1 mm), published on rgb/depth when present


def synthetic_pairs(count: int, width: int, height: int, rate: float, thermal_encoding: str = "mono16"
                    ) -> list[InputPair]:
    scene = SyntheticScene(width, height)
    pairs = []
    for index in range(count):
        frame = scene.frame(index / rate)
        thermal = frame.thermal_mono16 if thermal_encoding == "mono16" else frame.thermal_mono8
        pairs.append(InputPair(thermal, thermal_encoding, frame.visible))
    return pairs


def rig_pairs(count: int, width: int, height: int, baseline: float) -> tuple[list[InputPair], dict[str, dict]]:
    """A person walking from 6 m to 1.2 m towards a rig whose thermal camera is ``baseline`` m right of the rgb
    camera (``width`` x ``height``; thermal as wide, 5:4), beside a car at 8 m: the pairs with the rgb camera's
    depth, and each camera's camera_info fields (``thermal``, ``rgb``)."""
    from sage_core.parallax_scene import ParallaxScene, Person, Vehicle, depth_image, make_rig

    rig = make_rig((width, height), (width, round(width * 0.8)), baseline=baseline)
    pairs = []
    for index in range(count):
        distance = 6.0 - 4.8 * index / max(1, count - 1)
        scene = ParallaxScene([Person(-0.35, distance), Vehicle(2.2, 8.0)], seed=index)
        rendered = scene.render(rig)
        pairs.append(InputPair(rendered.thermal, "mono16", rendered.rgb, depth_image(scene, rendered, seed=index)))
    infos = {}
    for label, view in (("thermal", rig.thermal), ("rgb", rig.rgb)):
        infos[label] = {"width": view.size[0], "height": view.size[1], "distortion_model": "plumb_bob",
                        "d": [0.0] * 5, "k": view.k.ravel().tolist(), "r": np.eye(3).ravel().tolist(),
                        "p": np.column_stack([view.k, np.zeros(3)]).ravel().tolist()}
    return pairs, infos


def rig_parameters(baseline: float) -> dict[str, object]:
    """The node's parameters for :func:`rig_pairs`'s rig (turned as :func:`~sage_core.parallax_scene.make_rig` turns
    it)."""
    from sage_core.parallax_scene import make_rig
    from sage_core.rig import quaternion_from_rotation

    rotation = make_rig(baseline=baseline).extrinsics.rotation
    return {"rig_translation": [baseline, 0.0, 0.0], "rig_rotation": quaternion_from_rotation(rotation)}


def dataset_input_pairs(folder: str | Path, count: int) -> list[InputPair]:
    """Pairs from a dataset folder (ir/, vis/), cycled to ``count``, or the first ``count`` frames of a clip
    folder (ir.mp4 + vis.mp4: a video is played in order, never cycled); thermal published as mono8."""
    import cv2

    if is_clip(Path(folder)):
        return [InputPair(ir, "mono8", vis) for ir, vis in read_clip(Path(folder), count)]
    files = dataset_pairs(folder)
    pairs = []
    for index in range(count):
        ir, vis = read_pair(files[index % len(files)])
        if ir.ndim == 3:
            ir = cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY if ir.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        if ir.dtype != np.uint8:
            ir = (ir // 257).astype(np.uint8) if ir.dtype == np.uint16 else ir.astype(np.uint8)
        if vis.ndim == 2:
            vis = cv2.cvtColor(vis, cv2.COLOR_GRAY2BGR)
        pairs.append(InputPair(ir, "mono8", vis[..., :3].astype(np.uint8)))
    return pairs
