"""The Pareto plot: mean Dice (memory-only: parameters) against peak memory, one group per kind."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import NamedTuple

from revprof.report.inputs import TrialRow
from revprof.report.panels.common import is_feasible, patch_text
from revprof.sweep.export import spec_file_name
from revprof.sweep.pareto import non_dominated
from revprof.units import format_bytes

FAILED_GROUPS = (("infeasible", "over budget"), ("oom", "out of memory"),
                 ("diverged", "diverged"), ("failed", "failed"), ("interrupted", "interrupted"))


class PointGroup(NamedTuple):
    """One trace of the Pareto plot: trials of one kind."""

    name: str
    kind: str  # "front", "dominated", or a failure status
    numbers: tuple[int, ...]
    peak_bytes: tuple[int, ...]
    y: tuple[float, ...]
    hover: tuple[str, ...]


class ParetoInfo(NamedTuple):
    """Mean Dice (or, without Dice, parameter count) against peak memory, one group per kind."""

    y_kind: str  # "dice" or "params"
    y_label: str
    budget_bytes: int | None
    groups: tuple[PointGroup, ...]


def _y(trial: TrialRow, kind: str) -> float | None:
    if kind == "dice":
        return trial.dice.mean if trial.dice is not None else None
    return float(trial.params) if trial.params is not None else None


def pareto_front(points: Sequence[tuple[int, int, float]]) -> list[int]:
    """Numbers of the non-dominated ``(number, peak, y)`` points: lower peak, higher y.

    A point is dominated when another is at least as good in both and better in one; of exact
    ties the lowest number is kept (:func:`revprof.sweep.pareto.non_dominated`).
    """
    return non_dominated([(number, (peak, -y)) for number, peak, y in points], ties="first")


def pareto_info(trials: Sequence[TrialRow], budget: int | None,
                study: str | None = None) -> ParetoInfo | None:
    """Groups: the front, the dominated feasible trials, then each kind of failure."""
    kind = "dice" if any(t.dice is not None for t in trials) else "params"
    label = "mean Dice (WT, TC, ET)" if kind == "dice" else "parameters"
    feasible = [t for t in trials if is_feasible(t, budget) and _y(t, kind) is not None]
    points = [(t.number, t.memory_bytes, _y(t, kind)) for t in feasible]
    front = set(pareto_front(points))  # type: ignore[arg-type]
    groups = []
    for name, group_kind, members in (
        ("Pareto front", "front", [t for t in feasible if t.number in front]),
        ("dominated", "dominated", [t for t in feasible if t.number not in front]),
    ):
        if members:
            members.sort(key=lambda t: (t.memory_bytes, t.number))
            groups.append(_group(name, group_kind, members, kind, study=study))
    over = [t for t in trials if t.status == "ok" and t.memory_bytes is not None
            and budget is not None and t.memory_bytes > budget]
    for status, name in FAILED_GROUPS:
        members = [t for t in trials if t.memory_bytes is not None
                   and (t.status == status or (status == "infeasible" and t in over))]
        if members:
            members.sort(key=lambda t: (t.memory_bytes, t.number))
            groups.append(_group(name, status, members, kind, failed=True, study=study))
    if not groups:
        return None
    return ParetoInfo(kind, label, budget, tuple(groups))


def _group(name: str, kind: str, members: list[TrialRow], y_kind: str, failed: bool = False,
           study: str | None = None) -> PointGroup:
    ys = []
    for t in members:
        y = _y(t, y_kind)
        ys.append(0.0 if (failed and y_kind == "dice") or y is None else float(y))
    return PointGroup(name, kind, tuple(t.number for t in members),
                      tuple(int(t.memory_bytes) for t in members),  # type: ignore[arg-type]
                      tuple(ys), tuple(hover_text(t, study) for t in members))


def front_numbers(pareto: ParetoInfo | None) -> set[int]:
    if pareto is None:
        return set()
    return {n for g in pareto.groups if g.kind == "front" for n in g.numbers}


def spec_command(study: str, number: int) -> str:
    """The command that writes trial ``number``'s spec file (``revprof export``)."""
    return f"revprof export {study} --trial {number}"


def hover_text(t: TrialRow, study: str | None = None) -> str:
    """The spec in words, Dice per region, peak and seconds per step, and (trials of a study)
    how to get its spec file (HTML line breaks)."""
    # plotly renders hover text as HTML: every user-given or stored text is escaped
    lines = [f"<b>{html.escape(str(t.label))}</b> {html.escape(str(t.status))}",
             html.escape(str(t.spec_words))]
    settings = []
    if t.patch:
        settings.append(f"patch {patch_text(t.patch)}")
    if t.batch:
        settings.append(f"batch {t.batch}")
    if t.precision:
        settings.append(t.precision)
    if settings:
        lines.append(", ".join(settings))
    if t.dice is not None:
        lines.append(f"Dice WT {t.dice.wt:.3f} · TC {t.dice.tc:.3f} · ET {t.dice.et:.3f} · "
                     f"mean {t.dice.mean:.3f}")
    if t.peak_bytes is not None:
        lines.append(f"peak {format_bytes(t.peak_bytes)}")
    if t.predicted_peak_bytes is not None and t.predicted_peak_bytes != t.peak_bytes:
        lines.append(f"predicted peak {format_bytes(t.predicted_peak_bytes)}")
    if t.predicted_reserved_bytes is not None:
        lines.append(f"predicted reserved {format_bytes(t.predicted_reserved_bytes)}")
    if t.params is not None:
        lines.append(f"{t.params:,} parameters")
    if t.seconds_per_step is not None:
        lines.append(f"{t.seconds_per_step:.3g} s per step")
    if t.error:
        lines.append(f"error: {t.error[:120]}")
    if study is not None and t.spec is not None:
        lines.append(f"spec file {spec_file_name(study, t.number)}: {spec_command(study, t.number)}")
    return "<br>".join(_escape(line) if i else line for i, line in enumerate(lines))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
