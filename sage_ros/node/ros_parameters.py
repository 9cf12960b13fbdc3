"""The parameter table (``sage_ros/parameters.py``) declared on an rclpy node, and read back validated."""

from __future__ import annotations

from dataclasses import fields

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException

from sage_ros.parameters import SPECS, FusionParams, ParameterError, from_values, parameter_kind


def declare_parameters(node, lock_read_only: bool = True) -> None:
    """Declare every parameter on ``node`` (an rclpy Node); ParameterError for a value outside its range.
    The other checks wait for :func:`read_parameters` (a managed node reports them at configure).
    ``lock_read_only=False`` leaves read-only parameters settable for the node to refuse itself: a managed
    node takes them while unconfigured."""
    for spec in fields(FusionParams):
        meta, kind = spec.metadata, parameter_kind(spec)
        text = meta["description"] + (f" ({' | '.join(meta['choices'])})" if meta["choices"] else "")
        # Dynamic typing: a wrong type reaches our validation, which says what was expected in words.
        descriptor = ParameterDescriptor(description=text, read_only=meta["read_only"] and lock_read_only,
                                         dynamic_typing=True)
        if meta["low"] is not None and kind is int:
            descriptor.integer_range = [IntegerRange(from_value=int(meta["low"]), to_value=int(meta["high"]), step=1)]
        elif meta["low"] is not None:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(meta["low"]),
                                                                  to_value=float(meta["high"]), step=0.0)]
        default = getattr(FusionParams(), spec.name)
        try:
            node.declare_parameter(spec.name, default, descriptor)
        except InvalidParameterValueException:
            raise ParameterError(f"parameter {spec.name}: value outside [{meta['low']}, {meta['high']}]") from None


def read_parameters(node) -> FusionParams:
    """The declared parameters of ``node``, validated as a whole, or ParameterError saying what is wrong."""
    return from_values({name: node.get_parameter(name).value for name in SPECS})
