"""A run's checkpoints and resumable state: ``last.pt`` (the student, our checkpoint format),
``student_stepN.pt``, ``teacher_last.pt``, ``state.pt`` (everything ``--resume`` needs) and
``summary.json``. The distiller hands over what they hold as a :class:`RunParts` and writes only
on rank 0; nothing here knows the distiller."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sage_core.atomic import atomic_path
from sage_core.checkpoint import save_checkpoint
from sage_core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from sage_core.models import FusionModel
    from sage_core.train.config import DistillConfig
    from sage_core.train.crops import CropSampler
    from sage_core.train.segmentation import SegmentationTerm


@dataclass(frozen=True)
class RunParts:
    """The objects of one run that a checkpoint saves and ``--resume`` restores in place."""

    out: Path
    config: DistillConfig
    student: FusionModel
    teacher: nn.Module | None
    projections: nn.Module | None
    opt_student: torch.optim.Optimizer
    sched_student: Any  # a torch LR scheduler
    opt_teacher: torch.optim.Optimizer | None  # None: the teacher is frozen
    sched_teacher: Any
    segmentation: SegmentationTerm | None
    sampler: CropSampler


def save(run: RunParts, step: int, history: list[dict], final: bool = False) -> None:
    """The checkpoints after ``step``; ``final``: no numbered student checkpoint. Call on rank 0 only."""
    meta = {"step": step, "teacher": run.config.teacher.kind, "distill_config": run.config.to_dict(),
            "trained_on": [Path(f).name for f in run.config.data.train]}
    save_checkpoint(run.student, run.out / "last.pt", meta=meta)
    if not final:
        save_checkpoint(run.student, run.out / f"student_step{step:06d}.pt", meta=meta)
    if run.config.teacher.kind == "spa":
        save_checkpoint(run.teacher, run.out / "teacher_last.pt", meta=meta)
    payload = {
        "step": step, "student": run.student.state_dict(),
        "projections": run.projections.state_dict() if run.projections else None,
        "teacher": run.teacher.state_dict() if run.opt_teacher else None,
        "opt_student": run.opt_student.state_dict(), "sched_student": run.sched_student.state_dict(),
        "opt_teacher": run.opt_teacher.state_dict() if run.opt_teacher else None,
        "sched_teacher": run.sched_teacher.state_dict() if run.sched_teacher else None,
        "segmentation": run.segmentation.state_dict() if run.segmentation else None,
        "sampler_rng": json.dumps(run.sampler.rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(), "history": json.dumps(history),
    }
    with atomic_path(run.out / "state.pt") as tmp:
        torch.save(payload, tmp)


def _load_schedule(scheduler, saved: dict) -> None:
    """A resumed run may ask for more steps: keep the schedule's progress, but this run's length."""
    length = scheduler.T_max
    scheduler.load_state_dict(saved)
    scheduler.T_max = length


def resume(run: RunParts, device: torch.device) -> tuple[int, list[dict]]:
    """Restore ``state.pt`` into the run's objects; the step it was saved at and the validation history."""
    path = run.out / "state.pt"
    if not path.is_file():
        raise ConfigError(f"--resume: {path} not found (nothing to resume in {run.out})")
    saved = torch.load(path, map_location=device, weights_only=True)
    run.student.load_state_dict(saved["student"])
    if run.projections is not None and saved["projections"] is not None:
        run.projections.load_state_dict(saved["projections"])
    if run.opt_teacher is not None and saved["teacher"] is not None:
        run.teacher.load_state_dict(saved["teacher"])
        run.opt_teacher.load_state_dict(saved["opt_teacher"])
        _load_schedule(run.sched_teacher, saved["sched_teacher"])
    if run.segmentation is not None:
        run.segmentation.load_state_dict(saved.get("segmentation"))
    run.opt_student.load_state_dict(saved["opt_student"])
    _load_schedule(run.sched_student, saved["sched_student"])
    run.sampler.rng.bit_generator.state = json.loads(saved["sampler_rng"])
    torch.set_rng_state(saved["torch_rng"].cpu())
    return int(saved["step"]), json.loads(saved["history"])


def write_summary(out: Path, *, steps: int, world: int, timing: dict[str, list[float]], history: list[dict],
                  mask_cache: Any = None, write: bool = True) -> dict:
    """The run's summary (``mask_cache``: its hits and misses, if one was used), written when ``write``."""
    summary = {
        "steps": steps, "world_size": world,
        "seconds_per_step": {k: float(np.median(v)) for k, v in timing.items() if v},
        "validation": history, "out": str(out),
        "mask_cache": {"hits": mask_cache.hits, "misses": mask_cache.misses} if mask_cache else None,
    }
    if write:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
