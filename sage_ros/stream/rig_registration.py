"""The rig of the node's parameters, and the aligner for the cameras' current camera_info and distance.

The node and the bag tool register a rig with a baseline by its geometry (``sage_core.rig``): the extrinsics
come from the parameters (``rig_file``, or ``rig_translation`` and ``rig_rotation``), the intrinsics from each
camera's camera_info as :class:`~sage_ros.stream.lenses.CameraLenses` keeps it (rectified when the frames are),
or from the rig file's camera_info files for a camera that publishes none. :meth:`RigRegistration.aligner`
gives the :class:`~sage_core.rig_alignment.RigAligner` for this frame, built again only when a camera_info,
``registration_distance`` or ``depth_fill_holes`` changes (both changeable at run time). A frame that arrives
before a camera's intrinsics fails with a FusionInputError that names the camera_info topic. No ROS here.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sage_core.cameras import Camera
from sage_core.errors import ConfigError, FusionInputError
from sage_core.lens import LensModel
from sage_core.rig import Rig, RigExtrinsics
from sage_core.rig_alignment import RigAligner
from sage_core.rig_file import read_rig_file
from sage_ros.parameters import FusionParams, ParameterError
from sage_ros.stream.lenses import CameraLenses


class RigRegistration:
    """The rig's extrinsics and the aligner of the latest intrinsics; thread-safe (workers ask, the parameter
    callback reconfigures)."""

    def __init__(self, params: FusionParams) -> None:
        """ParameterError when the rig file cannot be used (what is wrong, where)."""
        self.file_lenses: dict[Camera, LensModel] = {}
        try:
            if params.rig_file:
                rig_file = read_rig_file(params.rig_file)
                self.extrinsics: RigExtrinsics = rig_file.extrinsics
                self.file_lenses = {camera: lens for camera, lens in ((Camera.THERMAL, rig_file.thermal_lens),
                                                                      (Camera.RGB, rig_file.rgb_lens)) if lens}
            else:
                self.extrinsics = params.rig_extrinsics()
        except ConfigError as exc:
            raise ParameterError(f"parameter rig_file: {exc}") from None
        self._config = params.alignment_config()
        self._distance, self._depth = params.registration_distance, params.depth_settings()
        self._lock = threading.Lock()
        self._current: tuple[tuple, RigAligner] | None = None

    @classmethod
    def from_params(cls, params: FusionParams) -> RigRegistration | None:
        """The rig of these parameters, or None when they set none."""
        return cls(params) if params.has_rig else None

    def offer_file_lenses(self, lenses: CameraLenses) -> None:
        """Give ``lenses`` the rig file's camera_info of each camera it names (a live camera_info replaces it)."""
        for camera, lens in self.file_lenses.items():
            lenses.offer(camera, SimpleNamespace(**lens.fields()))

    def reconfigure(self, params: FusionParams) -> None:
        """The run-time changeable settings: registration_distance, depth_fill_holes (from the next frame)."""
        with self._lock:
            self._distance, self._depth = params.registration_distance, params.depth_settings()

    @property
    def distance(self) -> float:
        with self._lock:
            return self._distance

    def aligner(self, lenses: CameraLenses | None) -> RigAligner:
        """The aligner for the cameras' latest intrinsics and the distance in force; FusionInputError while a
        camera's intrinsics are unknown (no camera_info yet) or unusable."""
        views = {}
        for camera in Camera:
            try:
                view = lenses.view(camera) if lenses is not None else None
            except ConfigError as exc:
                raise FusionInputError(f"the rig needs the {camera.label} camera's intrinsics: {exc}") from None
            if view is None:
                raise FusionInputError(
                    f"the rig needs the {camera.label} camera's intrinsics: no camera_info has come on "
                    f"{camera.label}/camera_info (or name a camera_info file in the rig file)")
            views[camera] = view
        with self._lock:
            distance, depth, current = self._distance, self._depth, self._current
        key = (id(views[Camera.THERMAL]), id(views[Camera.RGB]), distance, depth)
        if current is not None and current[0] == key:
            return current[1]
        if current is not None and current[0][:2] == key[:2] and current[0][3] == depth:
            aligner = current[1].at_distance(distance)  # the same grids: their lookups are kept
        else:
            rig = Rig(self.extrinsics, views[Camera.THERMAL], views[Camera.RGB])
            aligner = RigAligner(self._config, rig, distance, depth)
        with self._lock:
            self._current = (key, aligner)
        return aligner
