"""Each camera's lens, from its latest camera_info: frames rectified before alignment, the fused camera_info.

The node (camera_info subscriptions) and the bag tool (camera_info messages in the bag) offer every
camera_info they get; :meth:`CameraLenses.rectify` undistorts a job's frames on the worker thread with
maps built once per lens (``sage_core.rectification.RectifierCache``: a camera_info repeated at 30 Hz
costs a key comparison), and :meth:`CameraLenses.output_lens` is what ``fused/camera_info`` describes:
the rectified model when the reference camera was rectified, else its camera_info as it came. A
camera_info that cannot be used (an unknown distortion model, sizes that do not fit) is counted as a bad
message of kind ``camera_info`` (and logged, rate-limited), and that camera's frames go on unrectified.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from sage_core.cameras import Camera
from sage_core.errors import ConfigError
from sage_core.lens import LensModel
from sage_core.rectification import Rectifier, RectifierCache, lens_key
from sage_core.rig import CameraView
from sage_ros.stream.frames import Job


class CameraLenses:
    """The latest camera_info of each camera and its rectifier; thread-safe (offered on the executor,
    used on the workers). ``enabled`` False (parameter ``rectify``): frames are never rectified."""

    def __init__(self, enabled: bool, report_bad: Callable[[str, str, str], None]) -> None:
        self.enabled, self._report_bad = enabled, report_bad
        self._caches = {camera: RectifierCache(source=f"{camera.label}/camera_info") for camera in Camera}
        self._info: dict[Camera, object] = {}
        self._rectifier: dict[Camera, Rectifier | None] = {}
        self._views: dict[Camera, tuple[tuple, CameraView]] = {}  # the rig's view of each camera, by lens
        self._lock = threading.Lock()

    def offer(self, camera: Camera, info) -> None:
        """A camera_info arrived (any object with CameraInfo's fields)."""
        rectifier = None
        if self.enabled:
            try:
                rectifier = self._caches[camera].get(info)  # builds the maps only when the lens changed
            except ConfigError as exc:  # every such message counts; the report's log is rate-limited
                self._report_bad(camera.label, "camera_info", f"{exc}; its images are fused unrectified")
        with self._lock:
            self._info[camera], self._rectifier[camera] = info, rectifier

    def info(self, camera: Camera):
        """The camera's latest camera_info as it came, or None."""
        with self._lock:
            return self._info.get(camera)

    def rectifier(self, camera: Camera) -> Rectifier | None:
        with self._lock:
            return self._rectifier.get(camera)

    def rectify(self, job: Job) -> Job:
        """The job with each frame rectified whose camera has a distorted lens (FusionInputError when an
        image's size is not its camera_info's); a depth image, registered to the rgb camera, as the rgb image
        but nearest-pixel (a depth is never blended across an edge)."""
        frames = {}
        for camera, frame in job.frames.items():
            rectifier = self.rectifier(camera)
            frames[camera] = frame if rectifier is None else dataclasses.replace(frame, array=rectifier(frame.array))
        depth, rectifier = job.depth, self.rectifier(Camera.RGB)
        if depth is not None and rectifier is not None:
            depth = dataclasses.replace(depth, array=rectifier(depth.array, nearest=True))
        return Job(frames, depth)

    def view(self, camera: Camera) -> CameraView | None:
        """The camera's images as the aligner gets them (intrinsics, rectified or not), for the rig; None before
        its first camera_info. ConfigError when the camera_info has no camera matrix."""
        with self._lock:
            info, rectifier, cached = self._info.get(camera), self._rectifier.get(camera), self._views.get(camera)
        if info is None:
            return None
        key = (lens_key(info), id(rectifier))
        if cached is not None and cached[0] == key:
            return cached[1]
        lens = LensModel.from_camera_info(info, f"{camera.label}/camera_info")
        view = (CameraView.of(lens) if rectifier is None
                else CameraView.of(lens, rectifier.new_camera_matrix, rectifier.rotation))
        with self._lock:
            self._views[camera] = (key, view)
        return view

    def output_lens(self, reference: Camera):
        """What fused/camera_info describes: the reference camera's rectified model, its camera_info, or None."""
        rectifier = self.rectifier(reference)
        return rectifier.rectified_model() if rectifier is not None else self.info(reference)
