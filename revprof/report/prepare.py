"""Everything a report shows, as plain typed data: one object per figure, no plotly here.

:func:`prepare` turns a :class:`~revprof.report.inputs.Source` into a :class:`ReportData`; each
figure's data is made by its own module of :mod:`revprof.report.panels` (``pareto``,
``scaling`` for memory vs depth and patch size, ``breakdown``, ``timeline``, ``dice``,
``table``, ``header``). The depth, patch, breakdown and timeline figures are about one
*reference network* (:mod:`~revprof.report.panels.reference`: the study's best feasible trial,
or its first trial when there is no Dice); their numbers come from the trials themselves where
a trial measured exactly that configuration, and otherwise from the simulate backend, through
one :class:`~revprof.report.panels.memory.Memory` per call (each configuration simulated once,
nothing kept between reports).
"""

from __future__ import annotations

from dataclasses import dataclass

from revprof.report.inputs import Source
from revprof.report.panels.breakdown import BreakdownInfo, breakdown_info
from revprof.report.panels.dice import DiceInfo, dice_info
from revprof.report.panels.header import HeaderInfo, header_info
from revprof.report.panels.memory import Memory
from revprof.report.panels.pareto import ParetoInfo, front_numbers, pareto_info
from revprof.report.panels.reference import reference_trial, same_network
from revprof.report.panels.scaling import DepthInfo, PatchInfo, depth_info, patch_info
from revprof.report.panels.table import TableInfo, table_info
from revprof.report.panels.timeline import TimelineInfo, timeline_info


@dataclass(frozen=True)
class ReportData:
    """All a report shows; figures are ``None`` where the data does not allow them."""

    header: HeaderInfo
    pareto: ParetoInfo | None
    depth: DepthInfo | None
    patch: PatchInfo | None
    breakdown: BreakdownInfo | None
    timeline: TimelineInfo | None
    dice: DiceInfo | None
    table: TableInfo
    notes: tuple[str, ...]


def prepare(source: Source, *, date: str | None = None, budget_bytes: int | None = None,
            reference: int | None = None, memory: Memory | None = None) -> ReportData:
    """Every figure's data for ``source``.

    Args:
        date: the header's date; default: the latest trial completion time in the store.
        budget_bytes: overrides the study's memory budget.
        reference: trial number (results: row index) of the reference network.
        memory: where peaks come from (default: the trials, then the simulate backend).

    Raises:
        RevprofError: ``reference`` names no trial with a spec and patch.
    """
    trials = source.trials
    budget = budget_bytes if budget_bytes is not None else source.budget_bytes
    memory = memory if memory is not None else Memory(trials)  # this report's simulations
    notes: list[str] = []
    has_dice = any(t.dice is not None for t in trials)
    study = source.name if source.kind == "study" else None
    pareto = pareto_info(trials, budget, study)
    front = [t for t in trials if t.number in front_numbers(pareto)]
    ref = reference_trial(trials, budget, reference)
    depth = patch = breakdown = timeline = None
    if ref is None:
        notes.append("No trial has a spec and a patch: the memory figures about a "
                     "reference network are left out.")
    else:
        assert ref.spec and ref.patch
        recipe = ref.recipe
        extra = [t.patch for t in trials if t.patch and t.spec is not None
                 and same_network(t.spec, ref.spec)]
        depth = depth_info(ref.spec, ref.patch, recipe, budget, memory)
        if depth is None:
            notes.append(f"Memory vs depth needs a revunet reference network; {ref.label} is "
                         f"{ref.spec.arch}.")
        patch = patch_info(ref.spec, ref.patch, recipe, budget, memory, extra)
        others = [t for t in trials if t.spec is not None and t.spec.arch != ref.spec.arch
                  and t.patch == ref.patch and t.breakdown]
        breakdown = breakdown_info(ref, (front if has_dice else []) + others, memory)
        timeline = timeline_info(ref.spec, ref.patch, recipe, budget, memory)
    dice = dice_info(front) if has_dice else None
    if not has_dice:
        notes.append("Memory-only study (no Dice): the Pareto plot shows parameters against peak "
                     "memory, and there is no Dice figure.")
    header = header_info(source, trials, budget, ref, date)
    table = table_info(trials, budget, study, front_numbers(pareto))
    return ReportData(header=header, pareto=pareto, depth=depth, patch=patch, breakdown=breakdown,
                      timeline=timeline, dice=dice, table=table, notes=tuple(notes))
