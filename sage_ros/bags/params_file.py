"""The fusion node's parameter YAML (``config/fusion.yaml``, ``sage-calibrate``'s output) as ``FusionParams``.

The file is what ``ros2 run ... --params-file`` and the launch file take::

    /**:                       # or the node's name, sage_fusion, possibly under namespaces
      ros__parameters:
        homography: [...]

Every block that applies to the fusion node (``/**``, ``**``, a name ending in ``sage_fusion``) is merged
in file order. Names the node does not declare are ignored, as the node ignores them, and reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sage_ros.parameters import SPECS, FusionParams, ParameterError, from_values

NODE_NAME = "sage_fusion"
WILDCARDS = ("/**", "**", "/*", "*")


def _blocks(tree: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    """Every (node path, ros__parameters dict) in the file."""
    if not isinstance(tree, dict):
        return []
    found = []
    for key, value in tree.items():
        if key == "ros__parameters":
            found.append((path, value))
        else:
            found.extend(_blocks(value, path + (str(key),)))
    return found


def _applies(path: tuple[str, ...]) -> bool:
    if not path:
        return False
    return path[-1] in WILDCARDS or path[-1].strip("/").split("/")[-1] == NODE_NAME


def read_params_file(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """(the node's values in the file, the names it ignores). ParameterError names the file on any problem."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read the parameters file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    blocks = _blocks(tree)
    if not blocks:
        raise ParameterError(f"{path}: no 'ros__parameters' block; expected a ROS 2 parameters file such as "
                             f"config/fusion.yaml ('/**: ros__parameters: {{name: value}}')")
    values: dict[str, Any] = {}
    applied = 0
    for node_path, block in blocks:
        if not (_applies(node_path) or len(blocks) == 1):  # a lone block is meant for us, whatever its name
            continue
        if not isinstance(block, dict):
            raise ParameterError(f"{path}: ros__parameters of {'/'.join(node_path)} is not a mapping of names "
                                 "to values")
        values.update(block)
        applied += 1
    if not applied:
        names = ", ".join("/".join(p) for p, _ in blocks)
        raise ParameterError(f"{path}: no block for the fusion node (found {names}); expected /** or {NODE_NAME}")
    ignored = sorted(name for name in values if name not in SPECS)
    return {name: value for name, value in values.items() if name in SPECS}, ignored


def load_params(path: str | Path | None, overrides: dict[str, Any] | None = None) -> tuple[FusionParams, list[str]]:
    """FusionParams from the file (or the defaults) with ``overrides`` on top, validated as the node does."""
    values, ignored = read_params_file(path) if path else ({}, [])
    values.update(overrides or {})
    try:
        return from_values(values), ignored
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}" if path else str(exc)) from None
