"""``config/fusion.yaml`` from the parameter table (``parameters.py``): every parameter at its default, described.

    python -m sage_ros.parameters_yaml > config/fusion.yaml     # after changing the table (a test keeps them equal)
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from sage_ros.parameters import FusionParams


def _yaml_value(value: Any) -> str:
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"  # YAML's infinity; "inf" would be read as text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value == "" else value
    return str(value)


def render_yaml() -> str:
    """config/fusion.yaml: every parameter at its default, with its description (and choices) as a comment."""
    lines = ["# Parameters of the sage_ros fusion node: generated from sage_ros/parameters.py",
             "# (python -m sage_ros.parameters_yaml > config/fusion.yaml). Loaded by launch/fusion.launch.py;",
             "# launch arguments override the values here.", "/**:", "  ros__parameters:"]
    defaults = FusionParams()
    for spec in fields(FusionParams):
        meta = spec.metadata
        note = meta["description"] + (f" ({' | '.join(meta['choices'])})" if meta["choices"] else "")
        note += "; read-only" if meta["read_only"] else "; changeable at run time"
        lines.append(f"    # {note}")
        lines.append(f"    {spec.name}: {_yaml_value(getattr(defaults, spec.name))}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_yaml(), end="")
