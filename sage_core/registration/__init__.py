"""Registration of a thermal camera to an rgb camera: estimating the thermal -> rgb homography of a rig,
judging how far to trust it, measuring a frame's residual misalignment, and pictures to check it.

- ``register(thermals, rgbs, model)``: one rig's transform from one or several pairs (``sage-calibrate``).
- ``measure_residual(thermal, rgb, homography)``: the node's quick background check of one frame pair.
- ``before_after(thermal, rgb, homography)``: a before/after picture for a person.
"""

from sage_core.registration.estimate import MODELS, PairReport, Registration, register
from sage_core.registration.geometry import REPORT_WIDTH, grid_error
from sage_core.registration.pictures import before_after
from sage_core.registration.quality import Quality, RegistrationError
from sage_core.registration.residual import Residual, measure_residual

__all__ = ["MODELS", "REPORT_WIDTH", "PairReport", "Quality", "Registration", "RegistrationError", "Residual",
           "before_after", "grid_error", "measure_residual", "register"]
