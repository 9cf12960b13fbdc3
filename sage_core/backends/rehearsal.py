"""The CPU rehearsal of a GPU build (``training/export.py --rehearse tensorrt|onnx``), run in CI.

A TensorRT engine can only be built on a GPU, but what it is built from can be checked anywhere:

- ``tensorrt``: the program torch-tensorrt compiles, made by the very function the GPU build calls
  (:func:`sage_core.backends.tensorrt_trace.trace`: torch.export with distinct ``y`` and ``ir`` and a
  dynamic height and width over the engine's profile), checked, then run on the CPU as torch.export left
  it; the same trace in half precision is checked too (every convolution in float16), not run.
- ``onnx``: the ONNX file the ``onnxruntime`` backend builds on a GPU (the whole model, dynamic height and
  width), run by ONNX Runtime's CPU provider.

Each runs at the profile's min, opt and max shapes on different random ``y`` and ``ir`` and is compared
with eager PyTorch; above :data:`TOLERANCE` anywhere, or a shape refused, fails. It catches a build that
passes one tensor as both inputs, and an engine that takes one size only.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sage_core.backends import parity, tensorrt_trace
from sage_core.backends.base import prepare_for_inference
from sage_core.backends.engine_profile import ShapeProfile
from sage_core.backends.onnx_runtime import ONNX_OPSET, OnnxRuntimeBackend, export_onnx
from sage_core.errors import BackendError, ConfigError
from sage_core.models import FusionModel

#: Largest difference from eager PyTorch the rehearsed program may have (both run in float32 on the CPU).
TOLERANCE = 1e-5
TARGETS = ("tensorrt", "onnx")


@dataclass
class Rehearsal:
    """What was run, against eager PyTorch, and whether every shape passed."""

    target: str
    profile: ShapeProfile
    rows: list[parity.ParityRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: str = ""  # why the program could not be built or checked ('' when it could)

    @property
    def passed(self) -> bool:
        return not self.failure and bool(self.rows) and all(row.passed(TOLERANCE) for row in self.rows)

    def report(self, title: str) -> str:
        lines = [f"rehearsal of the {self.target} build on the CPU: {title}, profile {self.profile.describe()}",
                 *(f"  {note}" for note in self.notes)]
        if self.rows:
            lines.append(parity.table(self.rows, TOLERANCE))
        if self.failure:
            lines.append(f"FAILED: {self.failure}")
        elif self.passed:
            lines.append(f"passed: every shape within {TOLERANCE:g} of eager PyTorch, y != ir")
        else:
            refused = [row.label for row in self.rows if row.max_abs_diff is None]
            measured = [row.max_abs_diff for row in self.rows if row.max_abs_diff is not None]
            lines.append("FAILED: " + "; ".join(filter(None, (
                f"{', '.join(refused)} refused" if refused else "",
                f"{max(measured):.3g} from eager PyTorch (tolerance {TOLERANCE:g})"
                if measured and max(measured) > TOLERANCE else ""))))
        return "\n".join(lines)


def _tensorrt_program(model: FusionModel, profile: ShapeProfile, notes: list[str]) -> parity.Runner:
    program, (y, ir) = tensorrt_trace.trace(prepare_for_inference(model), profile)
    inputs = "y != ir" if y.data_ptr() != ir.data_ptr() and not torch.equal(y, ir) else "ONE TENSOR as both y and ir"
    height, width = tensorrt_trace.traced_size(program)
    if isinstance(height, torch.SymInt):
        axes = (f"height [{profile.min[0]}, {profile.max[0]}] and width [{profile.min[1]}, {profile.max[1]}] "
                "symbolic, the same symbols on both inputs")
    else:
        axes = f"height and width fixed at {width}x{height} (W x H)"
    notes.append(f"traced by torch.export.export(strict=False) with {inputs}, {axes}: the program "
                 "torch_tensorrt.dynamo.compile gets")
    half, _ = tensorrt_trace.trace(prepare_for_inference(model).half(), profile, torch.half)
    convolutions = [n for n in half.graph.nodes if str(n.target) in tensorrt_trace.CONVOLUTIONS]
    in_half = [n for n in convolutions if n.meta["val"].dtype == torch.half]
    notes.append(f"fp16 build: the same trace in half precision, {len(in_half)} of {len(convolutions)} "
                 "convolutions in float16 (checked, not run)")
    return program.module()


def _onnx_program(model: FusionModel, folder: Path, notes: list[str]) -> parity.Runner:
    path = folder / "model.onnx"
    export_onnx(model, path)
    backend = OnnxRuntimeBackend(path, torch.device("cpu"), threads=1)
    notes.append(f"exported by export_onnx (opset {ONNX_OPSET}, dynamic height and width, y != ir), run by ONNX "
                 f"Runtime on {backend.provider}")
    return backend.run


def rehearse(model: FusionModel, target: str, profile: ShapeProfile, seed: int = 0) -> Rehearsal:
    """Build the ``target``'s program on the CPU and compare it with eager PyTorch (module docstring)."""
    if target not in TARGETS:
        raise ConfigError(f"--rehearse {target!r}; expected one of {', '.join(TARGETS)}")
    result = Rehearsal(target, profile)
    reference = prepare_for_inference(model)
    with tempfile.TemporaryDirectory(prefix="sage_rehearsal_") as folder:
        try:
            if target == "tensorrt":
                candidate = _tensorrt_program(model, profile, result.notes)
            else:
                candidate = _onnx_program(model, Path(folder), result.notes)
        except BackendError as exc:
            result.failure = str(exc)
            return result
        result.rows = parity.measure(candidate, reference, profile.shapes(), "cpu", seed)
    return result
