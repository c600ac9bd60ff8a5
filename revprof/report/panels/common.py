"""Helpers every panel uses: the patch in words, feasibility, a network's executions, a line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from revprof.report.inputs import TrialRow
from revprof.spec import EXECUTIONS, ArchSpec


class Series(NamedTuple):
    """One line: a name and a value per x position (``None`` where a point could not be made)."""

    name: str
    values: tuple[int | None, ...]


def patch_text(patch: Sequence[int]) -> str:
    """``128³`` for a cube, ``160×192×160`` otherwise."""
    if len(set(patch)) == 1:
        return f"{patch[0]}³"
    return "×".join(str(p) for p in patch)


def is_feasible(trial: TrialRow, budget: int | None) -> bool:
    """Trained fine and within the budget."""
    if trial.status != "ok" or trial.memory_bytes is None:
        return False
    return budget is None or trial.memory_bytes <= budget


def variants(spec: ArchSpec) -> list[tuple[str, ArchSpec]]:
    """The same network executed each way it can be."""
    if spec.arch == "revunet":
        return [(e, spec.with_execution(e)) for e in EXECUTIONS]
    return [(e, spec.with_execution(e)) for e in EXECUTIONS[1:]]
