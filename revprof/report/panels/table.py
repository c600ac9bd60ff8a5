"""The table of every trial, with a sort key per cell."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from revprof.report.inputs import TrialRow
from revprof.report.panels.common import patch_text
from revprof.sweep.export import spec_file_name
from revprof.units import format_bytes


class Column(NamedTuple):
    name: str
    numeric: bool


class Cell(NamedTuple):
    text: str
    sort: float | str | None  # None sorts last


class TableInfo(NamedTuple):
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]


TABLE_COLUMNS = (
    Column("trial", True), Column("status", False), Column("network", False),
    Column("patch", False), Column("batch", True), Column("precision", False),
    Column("peak", True), Column("predicted peak", True), Column("predicted reserved", True),
    Column("parameters", True),
    Column("Dice WT", True), Column("Dice TC", True), Column("Dice ET", True),
    Column("Dice mean", True), Column("s / step", True), Column("device", False),
    Column("spec file", False),
)


OPTIONAL_COLUMNS = ("Dice", "s / step", "predicted peak", "predicted reserved", "spec file")
"""Columns left out when no trial has a value in them."""


def table_info(trials: Sequence[TrialRow], budget: int | None, study: str | None = None,
               front: set[int] | frozenset[int] = frozenset()) -> TableInfo:
    """One row per trial, with a sort key per cell (numbers sort numerically); for a study, the
    Pareto-front trials name their spec file (what ``revprof export STUDY --front`` writes)."""
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        status = t.status
        if status == "ok" and budget is not None and t.memory_bytes is not None and t.memory_bytes > budget:
            status = "ok (over budget)"
        dice = (None,) * 4 if t.dice is None else t.dice
        rows.append((
            Cell(t.label, t.number), Cell(status, status), Cell(t.spec_words, t.spec_words),
            Cell(patch_text(t.patch), t.patch[0] * t.patch[1] * t.patch[2]) if t.patch else Cell("", None),
            _num(t.batch, str), Cell(t.precision or "", t.precision),
            _num(t.peak_bytes, format_bytes), _num(t.predicted_peak_bytes, format_bytes),
            _num(t.predicted_reserved_bytes, format_bytes), _num(t.params, lambda v: f"{v:,}"),
            *(_num(value, lambda v: f"{v:.3f}") for value in dice),  # WT, TC, ET, mean
            _num(t.seconds_per_step, lambda v: f"{v:.3g}"), Cell(t.device or "", t.device),
            _spec_cell(t, study, front),
        ))
    keep = [i for i, column in enumerate(TABLE_COLUMNS)
            if not column.name.startswith(OPTIONAL_COLUMNS) or any(r[i].sort is not None for r in rows)]
    return TableInfo(tuple(TABLE_COLUMNS[i] for i in keep),
                     tuple(tuple(r[i] for i in keep) for r in rows))


def _spec_cell(t: TrialRow, study: str | None, front: set[int] | frozenset[int]) -> Cell:
    if study is None or t.spec is None or t.number not in front:
        return Cell("", None)
    name = spec_file_name(study, t.number)
    return Cell(name, name)


def _num(value: float | None, fmt: Callable) -> Cell:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("", None)
    return Cell(fmt(value), value)
