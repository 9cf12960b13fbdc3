"""Small models and images shared by the tests."""

from __future__ import annotations

import numpy as np
import torch

from sage_core.models.base import FusionModel


class TakeVisible(FusionModel):
    """Returns the visible luminance unchanged: fusion then must give back the visible image."""

    arch = "take_visible"

    def config(self) -> dict:
        return {}

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor):
        return y, []


class TakeThermal(TakeVisible):
    arch = "take_thermal"

    def forward_features(self, y: torch.Tensor, ir: torch.Tensor):
        return ir, []


def change_rms(pipelines: dict, pairs: list[tuple[np.ndarray, np.ndarray]], inside: tuple[slice, slice]
               ) -> dict[str, float]:
    """The RMS change between consecutive frames, inside ``inside``, of each pipeline's gray fused stream over
    ``pairs`` (thermal, BGR visible), and of the cameras: ``vis``, ``ir`` and ``cameras`` (per pixel the larger of
    the two cameras' changes)."""
    changes: dict[str, list[np.ndarray]] = {name: [] for name in (*pipelines, "vis", "ir", "cameras")}
    previous = None
    for ir, vis in pairs:
        current = {name: pipeline.fuse(ir, vis, gray=True) for name, pipeline in pipelines.items()}
        current.update(vis=vis[..., 0], ir=ir)
        current = {name: frame[inside].astype(float) for name, frame in current.items()}
        if previous is not None:
            for name, frame in current.items():
                changes[name].append(np.abs(frame - previous[name]))
            changes["cameras"].append(np.maximum(changes["ir"][-1], changes["vis"][-1]))
        previous = current
    return {name: float(np.sqrt(np.mean(np.square(values)))) for name, values in changes.items()}


def random_bgr(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def source_weights(fused: np.ndarray, ir: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares fit ``fused ~ a*ir + b*y + c`` on standardised images: (a, b, R^2).

    Plain correlations mislead when the two sources are anti-correlated (common in
    thermal/visible pairs); the joint fit says how much of each source the fused image carries.
    """
    z = lambda v: (v.astype(np.float64).ravel() - v.mean()) / (v.std() + 1e-12)  # noqa: E731
    design = np.stack([z(ir), z(y), np.ones(ir.size)], axis=1)
    target = z(fused)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    return float(coef[0]), float(coef[1]), float(1.0 - residual.var() / target.var())


def training_main(script: str, args: list[str]) -> int:
    """Run the command behind ``training/<script>.py`` (``sage_core.cli.<script>.main``) in this process."""
    import importlib

    return importlib.import_module(f"sage_core.cli.{script}").main(args)


def distill_main(args: list[str]) -> int:
    return training_main("distill", args)
