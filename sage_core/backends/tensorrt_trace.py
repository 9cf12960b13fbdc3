"""The program torch-tensorrt compiles, built with torch alone: the same on a GPU and in the CPU rehearsal.

torch-tensorrt's dynamo frontend compiles a ``torch.export`` ExportedProgram (``torch_tensorrt.compile``
traces an ``nn.Module`` with ``torch_tensorrt.dynamo.trace``, which calls ``torch.export.export(mod, args,
dynamic_shapes=..., strict=False)``; an ExportedProgram handed to ``torch_tensorrt.dynamo.compile`` is
compiled as it is). We trace here and hand over the program, so ``training/export.py --rehearse tensorrt``
runs on a CPU exactly what a GPU build compiles, and checks it (:func:`check_program`) before any GPU time:

- **Two distinct example inputs.** torch.export binds graph inputs to the example *objects*: one tensor
  passed as both ``y`` and ``ir`` gives a graph that fuses the thermal with itself.
- **A dynamic height and width** over the engine's :class:`ShapeProfile`, the same symbols on both inputs.
  As ``Dim.DYNAMIC`` with the profile's bounds, not a named ``Dim`` (what torch-tensorrt's
  ``Input(shared_dims=...)`` makes): ``avg_pool2d(ceil_mode=True)`` in AffineFuse emits the guard
  ``4*((h-1)//4) < h``, true for every h but not provable by torch.export's solver, which rejects a named
  ``Dim`` with a constraint violation and suggests multiples of 4. ``Dim.DYNAMIC`` accepts the same range
  and the graph's ``cat`` ties the two inputs to one symbol, which :func:`check_program` verifies.
- **Precision in the graph.** torch-tensorrt 2.14 builds strongly typed TensorRT networks and its dynamo
  compiler has no ``enabled_precisions``; an fp16 engine is a graph traced in half (module and inputs), so
  every convolution's type is checked here. Older torch-tensorrt (weakly typed) also gets
  ``enabled_precisions`` (:func:`compile_kwargs`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn
from torch.export import Dim

from sage_core.backends.engine_profile import ShapeProfile
from sage_core.backends.parity import random_pair
from sage_core.errors import BackendError

#: The inference module's inputs, in order (InferenceModule.forward(y, ir)).
INPUT_NAMES = ("y", "ir")
#: What we ask of torch_tensorrt.dynamo.compile besides inputs and device (part of the engine cache key).
#: min_block_size 1: no small run of operations is left to PyTorch unnoticed; their own engine cache off:
#: ours keys engines by everything that invalidates one.
COMPILE_SETTINGS = {"min_block_size": 1, "require_full_compilation": False, "truncate_double": True,
                    "cache_built_engines": False, "reuse_cached_engines": False}
CONVOLUTIONS = ("aten.conv2d.default", "aten.convolution.default", "aten._convolution.default")


def _axis(name: str, low: int, high: int):
    try:
        return Dim.DYNAMIC(min=low, max=high)
    except (AttributeError, TypeError):  # an older torch without bounded Dim.DYNAMIC (untested): a named Dim
        return Dim(name, min=low, max=high)


def _export_options(spec: tuple[dict, dict] | None) -> dict:
    """With named Dims (older torch), the guard they cannot prove becomes a runtime assertion, where torch.export
    can (``prefer_deferred_runtime_asserts_over_guards``); nothing to add with Dim.DYNAMIC or a fixed shape."""
    named = spec is not None and not type(spec[0][2]).__name__.startswith("_DimHint")
    if named and "prefer_deferred_runtime_asserts_over_guards" in inspect.signature(torch.export.export).parameters:
        return {"prefer_deferred_runtime_asserts_over_guards": True}
    return {}


def dynamic_shapes(profile: ShapeProfile) -> tuple[dict, dict] | None:
    """torch.export's ``dynamic_shapes`` for ``(y, ir)``: height (axis 2) and width (axis 3) over the profile,
    one spec object per axis for both inputs; None for a fixed profile."""
    if not profile.dynamic:
        return None
    height = _axis("height", profile.min[0], profile.max[0])
    width = _axis("width", profile.min[1], profile.max[1])
    return {2: height, 3: width}, {2: height, 3: width}


def example_inputs(profile: ShapeProfile, dtype: torch.dtype, device: torch.device | str,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two distinct random images at the profile's ``opt`` shape (see the module docstring)."""
    y, ir = random_pair(profile.opt, dtype, device, seed)
    assert y.data_ptr() != ir.data_ptr()
    return y, ir


def trace(module: nn.Module, profile: ShapeProfile, dtype: torch.dtype = torch.float32,
          device: torch.device | str = "cpu") -> tuple[torch.export.ExportedProgram, tuple[torch.Tensor, ...]]:
    """The ExportedProgram torch-tensorrt compiles, checked, and its example inputs. ``module`` is the inference
    module (forward(y, ir)), already on ``device`` in ``dtype``."""
    examples = example_inputs(profile, dtype, device)
    spec = dynamic_shapes(profile)
    try:
        program = torch.export.export(module, examples, dynamic_shapes=spec, strict=False, **_export_options(spec))
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; the first line says what failed
        raise BackendError(f"torch.export cannot trace the model over {profile.describe()}: "
                           f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from None
    check_program(program, profile, dtype)
    return program, examples


def _placeholder_shapes(program: torch.export.ExportedProgram) -> dict[str, tuple]:
    user = set(program.graph_signature.user_inputs)
    return {node.name: tuple(node.meta["val"].shape) for node in program.graph.nodes
            if node.op == "placeholder" and node.name in user}


def traced_size(program: torch.export.ExportedProgram) -> tuple:
    """The traced (height, width) of ``y``: SymInts when dynamic, ints when fixed."""
    return _placeholder_shapes(program)[INPUT_NAMES[0]][2:]


def check_program(program: torch.export.ExportedProgram, profile: ShapeProfile, dtype: torch.dtype) -> None:
    """BackendError unless the program reads the pixels of both y and ir, of one symbolic height and width
    covering the whole profile (or its fixed shape), and every convolution computes in ``dtype``."""
    if tuple(program.graph_signature.user_inputs) != INPUT_NAMES:
        raise BackendError(f"traced inputs {program.graph_signature.user_inputs}; expected {INPUT_NAMES}")
    for node in program.graph.nodes:  # one tensor traced as both inputs leaves one of them read for its size only
        if node.op == "placeholder" and node.name in INPUT_NAMES and all(
                "sym_size" in str(user.target) for user in node.users):
            raise BackendError(f"the traced graph never reads the pixels of {node.name!r}, only its size: were the "
                               "example inputs one tensor passed twice?")
    shapes = _placeholder_shapes(program)
    y, ir = (shapes[name][2:] for name in INPUT_NAMES)
    if [str(d) for d in y] != [str(d) for d in ir]:
        raise BackendError(f"the traced y {y} and ir {ir} do not share their height and width")
    for axis, size, name in zip((0, 1), y, ("height", "width")):
        low, high = profile.min[axis], profile.max[axis]
        if not profile.dynamic:
            if size != profile.opt[axis]:
                raise BackendError(f"traced {name} {size}; expected the fixed {profile.opt[axis]}")
            continue
        if not isinstance(size, torch.SymInt):
            raise BackendError(f"the trace specialised the {name} to {size}: the engine would take that size only")
        bounds = program.range_constraints.get(size.node.expr)
        if bounds is not None and (int(bounds.lower) > low or int(bounds.upper) < high):
            raise BackendError(f"the traced {name} ranges over [{bounds.lower}, {bounds.upper}], narrower than the "
                               f"profile's [{low}, {high}]")
    convolutions = [node for node in program.graph.nodes if str(node.target) in CONVOLUTIONS]
    wrong = [f"{node.name} ({node.meta['val'].dtype})" for node in convolutions if node.meta["val"].dtype != dtype]
    if wrong:
        raise BackendError(f"{len(wrong)} of {len(convolutions)} convolutions do not compute in {dtype}: "
                           f"{', '.join(wrong[:3])}")


def tensorrt_inputs(torch_tensorrt, profile: ShapeProfile, examples: tuple[torch.Tensor, ...]) -> list:
    """``torch_tensorrt.Input`` for y and ir: the profile's min/opt/max (the engine's optimisation profile), the
    examples' dtype, and the examples themselves as the Inputs' tensors."""
    inputs = []
    for name, example in zip(INPUT_NAMES, examples):
        shapes = {key: (1, 1, *shape) for key, shape in (("min_shape", profile.min), ("opt_shape", profile.opt),
                                                         ("max_shape", profile.max))}
        if not profile.dynamic:
            shapes = {"shape": shapes["opt_shape"]}
        inputs.append(torch_tensorrt.Input(**shapes, dtype=example.dtype, name=name, torch_tensor=example))
    return inputs


def compile_kwargs(compile_fn: Callable, fp16: bool) -> dict:
    """:data:`COMPILE_SETTINGS` that ``compile_fn`` (torch_tensorrt.dynamo.compile) names, plus
    ``enabled_precisions`` where it is still a parameter (torch-tensorrt before 2.14, weakly typed networks; in
    2.14 it is gone and would be swallowed by ``**kwargs``)."""
    parameters = inspect.signature(compile_fn).parameters
    kwargs = {name: value for name, value in COMPILE_SETTINGS.items() if name in parameters}
    if "enabled_precisions" in parameters:
        kwargs["enabled_precisions"] = {torch.half if fp16 else torch.float}
    return kwargs
