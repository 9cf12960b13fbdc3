"""The frame path: one job (a pair, or one camera's frame) in, the image to publish out; the node's and the bag tool's.

:func:`build_pipeline` makes the node's :class:`~sage_core.pipeline.FramePipeline` (model, thermal
normalisation, alignment) for a set of parameters; :func:`fuse_job` runs one job through it and gives
a :class:`FusedFrame`: the output image in the output encoding's layout, the header it takes (the
reference camera's), and the lens (rectified when it was) and alignment plan its camera_info follows.
Distorted images are rectified first (``stream/lenses.py``). The live node (``fusion_node.py``, on its
worker threads) and the bag tool (``bags/offline.py``, in line) both call these two, so recorded data
is fused exactly as live data.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sage_core.alignment import Aligner, AlignmentPlan
from sage_core.cameras import Camera
from sage_core.fuser import Fuser
from sage_core.options import InferenceOptions, resolve_device
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer
from sage_ros.codec.encodings import to_output_encoding
from sage_ros.parameters import FusionParams
from sage_ros.stream.frames import Job
from sage_ros.stream.lenses import CameraLenses
from sage_ros.stream.rig_registration import RigRegistration


@dataclass(frozen=True)
class FusedFrame:
    """One output image in the output encoding's layout, with the header of the camera it takes."""

    image: np.ndarray | None  # fused/image's (None: nobody wanted it)
    encoding: str
    header: object
    passthrough: bool = False
    plan: AlignmentPlan | None = None  # how the reference camera's pixels became the output's (pairs only)
    inference_ms: float | None = None  # time in the pipeline (pairs only)
    lens: object | None = None  # what fused/camera_info starts from: the reference camera's (rectified) lens
    sources: tuple[np.ndarray, np.ndarray] | None = None  # the (thermal, rgb) images fused, rectified (pairs only)
    machines: np.ndarray | None = None  # the second stream's image (detection/image), when it was wanted

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the output images."""
        return (self.image if self.image is not None else self.machines).shape[:2]


def inference_workers(params: FusionParams) -> int:
    """inference_workers, or auto: two frames at once on a CPU (one frame's model and colour work overlaps
    the previous one's), one on a GPU (its engines and streams serialise the work anyway)."""
    if params.inference_workers:
        return params.inference_workers
    return 2 if resolve_device(params.device).type == "cpu" else 1


def _inference_options(params: FusionParams, workers: int) -> InferenceOptions:
    options = params.inference_options()
    if workers > 1 and not params.inference_threads:  # the frames in flight share the cores
        options = dataclasses.replace(options, inference_threads=max(1, (os.cpu_count() or 2) // workers))
    return options


def machines_fuser(params: FusionParams, workers: int = 1) -> Fuser:
    """The second stream's model (the shipped detection model), on the same backend settings as the first."""
    return Fuser.from_options(dataclasses.replace(_inference_options(params, workers), model="detection",
                                                  model_file_path=None))


def build_pipeline(params: FusionParams, workers: int = 1, machines: bool = False) -> FramePipeline:
    """The pipeline for these parameters, its CPU threads shared among ``workers`` frames in flight; ``machines``:
    with the second stream's model too (:func:`machines_fuser`), loaded after the first, whose errors come first."""
    pipeline = FramePipeline(Fuser.from_options(_inference_options(params, workers)),
                             ThermalNormalizer(params.thermal_config()), Aligner(params.alignment_config()),
                             params.smoothing_config())
    if machines:
        pipeline.machines = machines_fuser(params, workers)
    return pipeline


def fuse_job(pipeline: FramePipeline, job: Job, output_encoding: str,
             size_of: Callable[[Camera], tuple[int, int] | None], lenses: CameraLenses | None = None,
             rig: RigRegistration | None = None, streams: tuple[bool, bool] = (True, False)) -> FusedFrame:
    """Fuse a pair, or pass one camera's frame through (``size_of(camera)``: the other camera's latest
    (width, height), which the passthrough image is laid out for, or None when it never sent one).
    ``lenses``: each camera's camera_info; distorted images are rectified first. ``rig``: the rig's geometry
    aligns instead of the pipeline's aligner (per pixel when the job has a depth image). ``streams``: whether
    fused/image (people) and detection/image (machines, the pipeline's second model) are wanted."""
    if lenses is not None:
        job = lenses.rectify(job)
    aligner = rig.aligner(lenses) if rig is not None else pipeline.aligner  # one aligner for the whole frame
    machines = streams[1] and pipeline.machines is not None
    people = streams[0] or not machines  # one of the two at least
    if job.is_pair:
        thermal, rgb = job.frames[Camera.THERMAL], job.frames[Camera.RGB]
        reference = job.frames[pipeline.reference]
        depth = job.depth.array if job.depth is not None else None
        started = time.perf_counter()
        out = pipeline.fuse_streams(thermal.array, rgb.array, output_encoding == "mono8", depth, aligner, people,
                                    machines)
        inference_ms = 1000 * (time.perf_counter() - started)
        plan = aligner.plan(thermal.size, rgb.size)
        lens = lenses.output_lens(pipeline.reference) if lenses is not None else None
        people, machines = (None if o is None else to_output_encoding(o, output_encoding) for o in out)
        return FusedFrame(people, output_encoding, reference.header, plan=plan, inference_ms=inference_ms, lens=lens,
                          sources=(thermal.array, rgb.array), machines=machines)
    ((camera, reference),) = job.frames.items()
    out = to_output_encoding(pipeline.passthrough(camera, reference.array, size_of(camera.other) or reference.size,
                                                  aligner), output_encoding)
    return FusedFrame(out if people else None, output_encoding, reference.header, passthrough=True,
                      machines=out if machines else None)
