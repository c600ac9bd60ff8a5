"""One ``revprof bench`` run: memory tables, CPU step times, targets, optional CUDA, the record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from revprof.bench.memory import MemoryPlan, measure_tables
from revprof.bench.peers import EXECUTIONS, PeerExecution, revtorch_available
from revprof.bench.report import build_record
from revprof.bench.targets import TARGET_PATCH, evaluate
from revprof.bench.timing import time_executions
from revprof.memory.measure import oom_record
from revprof.recipe import PAPER, Recipe
from revprof.spec import ArchSpec, spec_from_options


@dataclass(frozen=True)
class BenchSettings:
    """Everything a run measures.

    The full settings are the issue's: the paper's revunet at 128³ and 160×192×160 with 1–4
    blocks per level; memory vs depth 1–8 on a 32-64-128-256 revunet at 96³; step times of a
    16-32-64-128 revunet at 64³. The quick settings shrink every network and patch so a run
    takes seconds (for tests), keeping the same structure.
    """

    memory: MemoryPlan
    timing_spec: ArchSpec
    timing_patch: tuple[int, int, int]
    repetitions: int
    warmup: int
    target_patch: tuple[int, int, int]
    target_depths: tuple[int, ...]
    quick: bool
    recipe: Recipe = PAPER

    @classmethod
    def full(cls) -> BenchSettings:
        return cls(
            memory=MemoryPlan(
                paper_spec=ArchSpec.paper_revunet(), patches=((128, 128, 128), (160, 192, 160)),
                depths=(1, 2, 3, 4), depth_spec=spec_from_options(widths="32,64,128,256"),
                depth_patch=(96, 96, 96), depth_range=tuple(range(1, 9)), peers=_peers()),
            timing_spec=spec_from_options(widths="16,32,64,128"), timing_patch=(64, 64, 64),
            repetitions=7, warmup=2, target_patch=TARGET_PATCH, target_depths=(1, 2, 3, 4),
            quick=False)

    @classmethod
    def quick_settings(cls) -> BenchSettings:
        paper = spec_from_options(widths="8,16", groups=2)
        return cls(
            memory=MemoryPlan(
                paper_spec=paper, patches=((16, 16, 16),), depths=(1, 2),
                depth_spec=spec_from_options(widths="4,8", groups=2), depth_patch=(8, 8, 8),
                depth_range=(1, 2), peers=_peers()),
            timing_spec=spec_from_options(widths="4,8", groups=2), timing_patch=(8, 8, 8),
            repetitions=2, warmup=1, target_patch=(16, 16, 16), target_depths=(1, 2), quick=True)


def _peers() -> tuple[PeerExecution, ...]:
    return tuple(p for p in EXECUTIONS if p != "revtorch" or revtorch_available())


def run_bench(settings: BenchSettings, command: str, cuda: bool = False,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything ``settings`` lists and return the record (see :mod:`revprof.bench.report`)."""
    started = time.perf_counter()
    rows = measure_tables(settings.memory, "simulate", progress, recipe=settings.recipe)
    timing = time_executions(settings.timing_spec, settings.timing_patch, settings.memory.peers,
                             repetitions=settings.repetitions, warmup=settings.warmup,
                             progress=progress, recipe=settings.recipe)
    targets = evaluate(rows, timing, settings.target_patch, settings.target_depths)
    cuda_record = run_cuda(settings, progress) if cuda else None
    plan = {**settings.memory.to_dict(), "timing_widths": list(settings.timing_spec.widths),
            "timing_patch": list(settings.timing_patch), "repetitions": settings.repetitions,
            "warmup": settings.warmup, "target_patch": list(settings.target_patch),
            "recipe": settings.recipe.to_dict()}
    return build_record(command, settings.quick, plan, rows, timing, targets, cuda_record,
                        time.perf_counter() - started)


def run_cuda(settings: BenchSettings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The main memory table and the step times on the GPU, when there is one."""
    if not torch.cuda.is_available():
        return {"run": False, "reason": "no CUDA GPU visible (torch.cuda.is_available() is False)"}
    plan = MemoryPlan(settings.memory.paper_spec, settings.memory.patches, settings.memory.depths,
                      settings.memory.depth_spec, settings.memory.depth_patch, (),
                      settings.memory.peers)
    rows = measure_tables(plan, "cuda", progress, recipe=settings.recipe)  # an oom row is a row
    try:
        timing = time_executions(settings.timing_spec, settings.timing_patch, settings.memory.peers,
                                 repetitions=settings.repetitions, warmup=settings.warmup,
                                 device="cuda", progress=progress, recipe=settings.recipe)
    except torch.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        return {"run": True, "device": torch.cuda.get_device_name(),
                "memory": [r.to_dict() for r in rows], "timing": None,
                "timing_status": "oom", "timing_oom": oom_record(error, "cuda"), "targets": []}
    return {"run": True, "device": torch.cuda.get_device_name(), "memory": [r.to_dict() for r in rows],
            "timing": timing.to_dict(),
            "targets": [t.to_dict() for t in evaluate(rows, timing, settings.target_patch,
                                                      settings.target_depths)]}
