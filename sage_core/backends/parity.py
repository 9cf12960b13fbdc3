"""Does a built artefact compute what the eager model computes? Measured on distinct random inputs.

Every check of an exported or compiled model (the CPU rehearsal, the acceptance of a TensorRT engine after
its build, benchmarks/bench_gpu.py) feeds it a pair ``(y, ir)`` of *different* random images at each of
the shapes it must accept: with ``y == ir`` a graph that wires one input to both places (a tensor passed
twice at trace time) looks right, and at one shape only a graph specialised to that shape looks right.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Shape = tuple[int, int]
Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def random_pair(shape: Shape, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two different ``(1, 1, H, W)`` uniform random images in [0, 1): visible luminance and thermal."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.rand(1, 1, *shape, generator=generator)
    ir = torch.rand(1, 1, *shape, generator=generator)
    return y.to(device=device, dtype=dtype), ir.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class ParityRow:
    """One shape: the largest absolute difference from the reference, or why the candidate did not run."""

    label: str
    shape: Shape
    max_abs_diff: float | None
    error: str = ""

    def passed(self, tolerance: float) -> bool:
        return self.max_abs_diff is not None and self.max_abs_diff <= tolerance


def measure(candidate: Runner, reference: Runner, shapes: dict[str, Shape], device: torch.device | str = "cpu",
            seed: int = 0, dtype: torch.dtype = torch.float32) -> list[ParityRow]:
    """Run both on a distinct random pair at each named shape; the candidate gets inputs in ``dtype``, the
    reference in float32. A candidate that raises gives a row with the first line of the error."""
    rows = []
    for index, (label, shape) in enumerate(shapes.items()):
        y, ir = random_pair(shape, torch.float32, device, seed + index)
        with torch.inference_mode():
            expected = reference(y, ir).float()
            try:
                got = candidate(y.to(dtype), ir.to(dtype))
            except Exception as exc:  # noqa: BLE001 - a shape the artefact refuses is a result, not a crash
                lines = str(exc).strip().splitlines() or [type(exc).__name__]
                rows.append(ParityRow(label, shape, None, f"{type(exc).__name__}: {lines[0][:160]}"))
                continue
        if tuple(got.shape) != tuple(expected.shape):
            rows.append(ParityRow(label, shape, None, f"output shape {tuple(got.shape)}, expected "
                                                      f"{tuple(expected.shape)}"))
            continue
        rows.append(ParityRow(label, shape, float((got.float() - expected).abs().max())))
    return rows


def worst(rows: list[ParityRow]) -> float:
    """The largest difference over the rows; infinity when one of them did not run."""
    return max((math.inf if row.max_abs_diff is None else row.max_abs_diff for row in rows), default=math.inf)


def table(rows: list[ParityRow], tolerance: float, scale: float = 1.0, unit: str = "") -> str:
    """The rows as a text table; differences times ``scale`` (255: grey levels), ``unit`` after them."""
    lines = [f"{'shape':<6} {'W x H':>11} {'max |diff|' + unit:>18}  result"]
    for row in rows:
        size = f"{row.shape[1]}x{row.shape[0]}"
        if row.max_abs_diff is None:
            lines.append(f"{row.label:<6} {size:>11} {'-':>18}  FAILED: {row.error}")
        else:
            verdict = "ok" if row.passed(tolerance) else f"FAILED: above {tolerance * scale:.2g}{unit}"
            lines.append(f"{row.label:<6} {size:>11} {row.max_abs_diff * scale:>18.3e}  {verdict}")
    return "\n".join(lines)
