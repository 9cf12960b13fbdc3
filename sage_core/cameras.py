"""The two cameras of a rig, named one way everywhere (pairing, alignment, the node)."""

from __future__ import annotations

import enum

from sage_core.errors import ConfigError


class Camera(enum.IntEnum):
    """A camera of the rig; the int value indexes per-camera pairs and queues."""

    THERMAL = 0
    RGB = 1

    @property
    def other(self) -> Camera:
        """The partner camera."""
        return Camera.RGB if self is Camera.THERMAL else Camera.THERMAL

    @property
    def label(self) -> str:
        """Lower-case name as used in topics, parameters and messages: ``thermal`` or ``rgb``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Camera:
        """``"thermal"`` / ``"rgb"`` -> Camera; ConfigError for anything else."""
        for camera in cls:
            if camera.label == text:
                return camera
        raise ConfigError(f"camera {text!r}; expected one of {', '.join(c.label for c in cls)}")
