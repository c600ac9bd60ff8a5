"""How long a training sweep will take, from one measured training step, before it starts."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from revprof.sweep.studyfile import StudyFile

MEASURED_VOXELS = 64**3
"""A larger patch is timed at a smaller one of about this many voxels and scaled by the voxel
count (convolutions cost in proportion to it), so the estimate takes seconds and little memory."""

HOURS_NEED_CONSENT = 1.0
"""A CPU sweep estimated above this many hours needs ``--yes`` (or fewer ``--steps``)."""


@dataclass(frozen=True)
class Estimate:
    """A sweep's training time: ``trials`` trainings of ``steps`` steps at ``seconds_per_step``
    (measured on ``network``); validation and memory prediction come on top."""

    network: str
    patch: tuple[int, int, int]
    seconds_per_step: float
    steps: int
    trials: int
    device: str
    measured_patch: tuple[int, int, int] | None = None

    @property
    def seconds(self) -> float:
        return self.seconds_per_step * self.steps * self.trials

    def words(self) -> str:
        scaled = ("" if self.measured_patch is None or self.measured_patch == self.patch else
                  f" scaled from {'×'.join(map(str, self.measured_patch))}")
        return (f"about {format_duration(self.seconds)} of training on the {self.device}: "
                f"{self.trials} trial(s) × {self.steps} steps × {self.seconds_per_step:.2f} s "
                f"(one step of {self.network} at {'×'.join(map(str, self.patch))}{scaled}, "
                f"measured now; fewer when executions share a training, validation not counted)")


def format_duration(seconds: float) -> str:
    """``3 min``, ``2.4 h``, ``45 s``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def estimate_sweep(study_file: StudyFile, trials: int, device: str) -> Estimate:
    """Time one training step (the second; the first creates the optimizer's state) of the
    study's first network (its first enqueued trial, else the first choice of every dimension)
    with the study's recipe on ``device``, and scale it to ``trials`` trials.

    The batch is :func:`revprof.step.synthetic_batch` of the recipe at a patch of about
    :data:`MEASURED_VOXELS` voxels.
    """
    import torch

    from revprof.environment import resolve_device
    from revprof.nn import build_model
    from revprof.step import TrainingStep, synthetic_batch
    from revprof.sweep.space import first_network

    spec, patch = first_network(study_file)
    recipe = study_file.recipe
    where = resolve_device(device)
    small = _smaller_patch(patch, spec.levels)
    model = build_model(spec).to(where)
    runner = TrainingStep(model, recipe, spec.output_kind, where.type)
    batch = synthetic_batch(spec, recipe, small, torch.Generator().manual_seed(0))
    if recipe.transfer == "resident":
        batch = batch.to(where)
    runner(batch, device=where)  # creates the optimizer's state
    started = time.perf_counter()
    runner(batch, device=where)
    if where.type == "cuda":
        torch.cuda.synchronize(where)
    seconds = (time.perf_counter() - started) * math.prod(patch) / math.prod(small)
    return Estimate(spec.describe(), patch, seconds, recipe.steps, trials, where.type.upper()
                    if where.type == "cpu" else str(where), small)


def _smaller_patch(patch: tuple[int, int, int], levels: int) -> tuple[int, int, int]:
    """``patch`` shrunk to about :data:`MEASURED_VOXELS` voxels, each axis still a multiple of
    ``2**(levels-1)``; ``patch`` itself when it is no larger."""
    if math.prod(patch) <= MEASURED_VOXELS:
        return patch
    factor = (MEASURED_VOXELS / math.prod(patch)) ** (1 / 3)
    multiple = 2 ** (levels - 1)
    small = [max(multiple, round(p * factor / multiple) * multiple) for p in patch]
    return small[0], small[1], small[2]
