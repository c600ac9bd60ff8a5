"""Everything a report shows, as plain typed data: one object per figure, no plotly here.

:func:`prepare` turns a :class:`Source` into a :class:`ReportData`. The memory-vs-depth,
memory-vs-patch, breakdown and timeline figures are about one *reference network* (the study's
best feasible trial, or its first trial when there is no Dice); their numbers come from the trials
themselves where a trial measured exactly that configuration, and otherwise from
``measure_memory(..., backend="simulate")`` (exact and cheap: about 2 s for the paper's network).
"""

from __future__ import annotations

import html

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from revprof.errors import RevprofError
from revprof.memory import CATEGORIES, MemoryReport, measure_memory
from revprof.report.inputs import Source, TrialRow
from revprof.spec import EXECUTIONS, ArchSpec
from revprof.sweep.export import spec_file_name
from revprof.sweep.pareto import non_dominated
from revprof.units import format_bytes

DEPTHS = (1, 2, 3, 4)
CATEGORY_LABELS = {"parameters": "parameters", "gradients": "gradients",
                   "optimizer_state": "optimizer state", "activations": "activations",
                   "other": "temporaries & other"}
FAILED_GROUPS = (("infeasible", "over budget"), ("oom", "out of memory"),
                 ("diverged", "diverged"), ("failed", "failed"), ("interrupted", "interrupted"))
MAX_TIMELINE_POINTS = 1500
MAX_BREAKDOWN_BARS = 8
MAX_PATCH_SIZES = 3


# ---- the typed figure data ----------------------------------------------------------------
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


class Series(NamedTuple):
    """One line: a name and a value per x position (``None`` where a point could not be made)."""

    name: str
    values: tuple[int | None, ...]


class DepthInfo(NamedTuple):
    """Peak memory of the reference network over blocks per level, per execution."""

    network: str
    patch: tuple[int, int, int]
    depths: tuple[int, ...]
    series: tuple[Series, ...]
    budget_bytes: int | None


class PatchInfo(NamedTuple):
    """Peak memory of the reference network over patch sizes, per execution.

    ``edges`` is the cube root of the voxel count (the edge of a cubic patch), so cubic growth
    shows as a curve.
    """

    network: str
    patches: tuple[tuple[int, int, int], ...]
    labels: tuple[str, ...]
    edges: tuple[float, ...]
    series: tuple[Series, ...]
    budget_bytes: int | None


class BreakdownBar(NamedTuple):
    label: str
    words: str
    categories: tuple[int, ...]  # in CATEGORIES order


class LevelBars(NamedTuple):
    label: str
    values: tuple[int, ...]  # per entry of BreakdownInfo.levels


class BreakdownInfo(NamedTuple):
    """Memory at the peak by category for selected configurations; activations per level."""

    categories: tuple[str, ...]
    bars: tuple[BreakdownBar, ...]
    levels: tuple[str, ...]
    level_bars: tuple[LevelBars, ...]


class TimelinePanel(NamedTuple):
    """Live bytes over the last measured training step of one execution."""

    name: str
    words: str
    ops: int
    x: tuple[int, ...]
    bytes: tuple[int, ...]
    spans: tuple[tuple[int, int, str], ...]
    peak_bytes: int
    reserved: tuple[int, ...] = ()
    """Reserved bytes the allocator model predicts at the same points (empty without a log)."""


class TimelineInfo(NamedTuple):
    patch: tuple[int, int, int]
    panels: tuple[TimelinePanel, ...]
    budget_bytes: int | None


class DiceInfo(NamedTuple):
    """Dice per region of the Pareto-front trials (in order of peak memory)."""

    labels: tuple[str, ...]
    words: tuple[str, ...]
    wt: tuple[float, ...]
    tc: tuple[float, ...]
    et: tuple[float, ...]
    mean: tuple[float, ...]


class Column(NamedTuple):
    name: str
    numeric: bool


class Cell(NamedTuple):
    text: str
    sort: float | str | None  # None sorts last


class TableInfo(NamedTuple):
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]


class HeaderInfo(NamedTuple):
    title: str
    facts: tuple[tuple[str, str], ...]


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


# ---- simulation with reuse of the trials --------------------------------------------------
Key = tuple[ArchSpec, tuple[int, int, int], int, str]


_CACHE: dict[Key, MemoryReport] = {}


def simulate(spec: ArchSpec, patch: tuple[int, int, int], batch: int, precision: str) -> MemoryReport:
    """``measure_memory`` with the simulate backend, remembered for the life of the process."""
    key = (spec, patch, batch, precision)
    if key not in _CACHE:
        _CACHE[key] = measure_memory(spec, patch, batch=batch, precision=precision,
                                     backend="simulate")
    return _CACHE[key]


class Memory:
    """Peaks, breakdowns and timelines of configurations: from a trial that measured exactly
    that configuration when there is one, else simulated.

    Args:
        trials: trials whose predicted peak (and breakdown) may be reused.
        simulator: the function that simulates (replaceable in tests).
    """

    def __init__(self, trials: Sequence[TrialRow],
                 simulator: Callable[[ArchSpec, tuple[int, int, int], int, str], MemoryReport] | None = None
                 ) -> None:
        self.known: dict[Key, TrialRow] = {}
        for t in trials:
            if t.spec and t.patch and t.batch and t.precision and t.predicted_peak_bytes is not None:
                self.known.setdefault((t.spec, t.patch, t.batch, t.precision), t)
        self.simulator = simulator or simulate
        self.simulated: list[Key] = []

    def _has_breakdown(self, key: Key) -> bool:
        trial = self.known.get(key)
        return bool(trial is not None and trial.breakdown and trial.activations_by_part is not None)

    def report(self, key: Key) -> MemoryReport:
        if key not in self.simulated:
            self.simulated.append(key)
        return self.simulator(*key)

    def peak(self, key: Key) -> int:
        trial = self.known.get(key)
        if trial is not None:
            return int(trial.predicted_peak_bytes)  # type: ignore[arg-type]
        return self.report(key).peak_bytes

    def breakdown(self, key: Key) -> tuple[tuple[int, ...], Mapping[str, int]]:
        """Bytes per category at the peak, and saved activations per part at the end of forward."""
        if self._has_breakdown(key):
            trial = self.known[key]
            return (tuple(int(trial.breakdown.get(c, 0)) for c in CATEGORIES),  # type: ignore[union-attr]
                    trial.activations_by_part)  # type: ignore[return-value]
        report = self.report(key)
        return tuple(report.breakdown.get(c, 0) for c in CATEGORIES), report.saved_after_forward


# ---- preparation --------------------------------------------------------------------------
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
    memory = memory or Memory(trials)
    notes: list[str] = []
    has_dice = any(t.dice is not None for t in trials)
    study = source.name if source.kind == "study" else None
    pareto = pareto_info(trials, budget, study)
    front = [t for t in trials if t.number in _front_numbers(pareto)]
    ref = reference_trial(trials, budget, reference)
    depth = patch = breakdown = timeline = None
    if ref is None:
        notes.append("No trial has a spec, patch, batch and precision: the memory figures about a "
                     "reference network are left out.")
    else:
        assert ref.spec and ref.patch
        batch, precision = ref.batch or 1, ref.precision or "fp32"
        extra = [t.patch for t in trials if t.patch and t.spec is not None
                 and _same_network(t.spec, ref.spec)]
        depth = depth_info(ref.spec, ref.patch, batch, precision, budget, memory)
        if depth is None:
            notes.append(f"Memory vs depth needs a revunet reference network; {ref.label} is "
                         f"{ref.spec.arch}.")
        patch = patch_info(ref.spec, ref.patch, batch, precision, budget, memory, extra)
        others = [t for t in trials if t.spec is not None and t.spec.arch != ref.spec.arch
                  and t.patch == ref.patch and t.breakdown]
        breakdown = breakdown_info(ref, (front if has_dice else []) + others, memory)
        timeline = timeline_info(ref.spec, ref.patch, batch, precision, budget, memory)
    dice = dice_info(front) if has_dice else None
    if not has_dice:
        notes.append("Memory-only study (no Dice): the Pareto plot shows parameters against peak "
                     "memory, and there is no Dice figure.")
    header = header_info(source, trials, budget, ref, date)
    return ReportData(header=header, pareto=pareto, depth=depth, patch=patch, breakdown=breakdown,
                      timeline=timeline, dice=dice, table=table_info(trials, budget, study, _front_numbers(pareto)),
                      notes=tuple(notes))


def _same_network(a: ArchSpec, b: ArchSpec) -> bool:
    return a == b or (a.arch == b.arch == "revunet" and a.with_execution("reversible")
                      == b.with_execution("reversible"))


def is_feasible(trial: TrialRow, budget: int | None) -> bool:
    """Trained fine and within the budget."""
    if trial.status != "ok" or trial.memory_bytes is None:
        return False
    return budget is None or trial.memory_bytes <= budget


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


def _front_numbers(pareto: ParetoInfo | None) -> set[int]:
    if pareto is None:
        return set()
    return {n for g in pareto.groups if g.kind == "front" for n in g.numbers}


def patch_text(patch: Sequence[int]) -> str:
    """``128³`` for a cube, ``160×192×160`` otherwise."""
    if len(set(patch)) == 1:
        return f"{patch[0]}³"
    return "×".join(str(p) for p in patch)


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


def reference_trial(trials: Sequence[TrialRow], budget: int | None, number: int | None = None
                    ) -> TrialRow | None:
    """The network the memory figures are about.

    ``number`` when given; else the feasible trial with the best mean Dice; else (no Dice) the
    first feasible trial; else the first trial. Only trials with a spec and a patch qualify, and
    of those the revunet ones when there are any (the memory-vs-depth figure needs one).
    """
    usable = [t for t in trials if t.spec is not None and t.patch is not None]
    if number is not None:
        for t in usable:
            if t.number == number:
                return t
        raise RevprofError(f"--reference {number}: no trial with that number has a spec and a patch"
                           f" (numbers: {', '.join(str(t.number) for t in usable) or 'none'})")
    if not usable:
        return None
    reversible = [t for t in usable if t.spec.arch == "revunet"]  # type: ignore[union-attr]
    usable = reversible or usable
    feasible = [t for t in usable if is_feasible(t, budget)]
    with_dice = [t for t in feasible if t.dice is not None and not math.isnan(t.dice.mean)]
    if with_dice:
        return max(with_dice, key=lambda t: (t.dice.mean, -t.number))  # type: ignore[union-attr]
    return min(feasible or usable, key=lambda t: t.number)


def _variants(spec: ArchSpec) -> list[tuple[str, ArchSpec]]:
    """The same network executed each way it can be."""
    if spec.arch == "revunet":
        return [(e, spec.with_execution(e)) for e in EXECUTIONS]
    return [(e, spec.with_execution(e)) for e in EXECUTIONS[1:]]


def depth_info(spec: ArchSpec, patch: tuple[int, int, int], batch: int, precision: str,
               budget: int | None, memory: Memory) -> DepthInfo | None:
    """Peaks over depths 1-4 (blocks per level, encoder and decoder) for each execution."""
    if spec.arch != "revunet":
        return None
    series = []
    for name, variant in _variants(spec):
        values = tuple(memory.peak((variant.with_depth(d), patch, batch, precision)) for d in DEPTHS)
        series.append(Series(name, values))
    words = f"revunet {'-'.join(map(str, spec.widths))}"
    return DepthInfo(words, patch, DEPTHS, tuple(series), budget)


def patch_sizes(spec: ArchSpec, patch: tuple[int, int, int],
                extra: Sequence[tuple[int, int, int]] = ()) -> list[tuple[int, int, int]]:
    """Cubic patches from half the reference patch's edge up to it (at most three, multiples of
    ``2**(levels-1)``), the reference patch itself and other patches the trials used, in order
    of voxel count."""
    unit = 2 ** (spec.levels - 1)
    top = max(unit, int(_edge(patch) // unit) * unit)
    low = max(unit, int(round(top / 2 / unit)) * unit)
    if MAX_PATCH_SIZES == 1 or low == top:
        edges = [top]
    else:
        step = (top - low) / (MAX_PATCH_SIZES - 1)
        edges = sorted({int(round((low + i * step) / unit)) * unit for i in range(MAX_PATCH_SIZES)})
    sizes = {(e, e, e) for e in edges} | {tuple(patch)} | {tuple(p) for p in extra}
    return sorted(sizes, key=lambda p: (p[0] * p[1] * p[2], p))  # type: ignore[arg-type,return-value]


def _edge(patch: Sequence[int]) -> float:
    """The edge of the cube with as many voxels as ``patch`` (exact for cubes)."""
    if len(set(patch)) == 1:
        return float(patch[0])
    return float(patch[0] * patch[1] * patch[2]) ** (1 / 3)


def patch_info(spec: ArchSpec, patch: tuple[int, int, int], batch: int, precision: str,
               budget: int | None, memory: Memory, extra: Sequence[tuple[int, int, int]] = ()
               ) -> PatchInfo:
    """Peaks over patch sizes, reversible and plain (plain and checkpoint for nonewnet)."""
    patches = patch_sizes(spec, patch, extra)
    series = []
    for name, variant in _variants(spec)[:2]:
        series.append(Series(name, tuple(memory.peak((variant, p, batch, precision)) for p in patches)))
    return PatchInfo(spec.describe().rsplit(" ", 1)[0] if spec.arch == "revunet" else spec.describe(),
                     tuple(patches), tuple(patch_text(p) for p in patches),
                     tuple(round(_edge(p), 3) for p in patches), tuple(series), budget)


def breakdown_info(ref: TrialRow, front: Sequence[TrialRow], memory: Memory) -> BreakdownInfo:
    """The reference network run each way, then the given trials (the Pareto front, then other
    architectures at the reference patch; at most 8 bars in all, each trial once); activations
    per level for the reference network's executions."""
    assert ref.spec and ref.patch
    batch, precision = ref.batch or 1, ref.precision or "fp32"
    bars: list[BreakdownBar] = []
    level_bars: list[LevelBars] = []
    levels = tuple([f"level {i}" for i in range(ref.spec.levels)] + ["loss"])
    for name, variant in _variants(ref.spec):
        categories, parts = memory.breakdown((variant, ref.patch, batch, precision))
        label = f"{ref.label} {name}"
        bars.append(BreakdownBar(label, f"{variant.describe()}, patch {patch_text(ref.patch)}",
                                 categories))
        level_bars.append(LevelBars(label, _per_level(parts, ref.spec.levels)))
    for t in front:
        if len(bars) >= MAX_BREAKDOWN_BARS:
            break
        if t.number == ref.number or not t.breakdown or any(b.label == t.label for b in bars):
            continue
        label = f"{t.label} {short_words(t.spec)}" if t.spec is not None else t.label
        words = t.spec_words + (f", patch {patch_text(t.patch)}" if t.patch else "")
        bars.append(BreakdownBar(label, words, tuple(int(t.breakdown.get(c, 0)) for c in CATEGORIES)))
    return BreakdownInfo(tuple(CATEGORY_LABELS[c] for c in CATEGORIES), tuple(bars), levels,
                         tuple(level_bars))


def short_words(spec: ArchSpec) -> str:
    """A few words for a bar label: ``d2 reversible``, ``nonewnet plain``."""
    if spec.arch == "nonewnet":
        return f"nonewnet {spec.execution}"
    depth = spec.encoder_depth[0] if len(set(spec.encoder_depth + spec.decoder_depth)) == 1 else "n"
    execution = spec.execution if spec.execution != "mixed" else "mixed"
    return f"d{depth} {execution}"


def _per_level(parts: Mapping[str, int], levels: int) -> tuple[int, ...]:
    """Saved activations per level (encoder i + decoder i; stem and head at level 0), then loss."""
    values = [0] * (levels + 1)
    for part, size in parts.items():
        name, _, index = part.partition(".")
        if name in ("encoder", "decoder") and index.isdigit() and int(index) < levels:
            values[int(index)] += size
        elif name in ("stem", "head"):
            values[0] += size
        else:
            values[levels] += size
    return tuple(values)


def timeline_info(spec: ArchSpec, patch: tuple[int, int, int], batch: int, precision: str,
                  budget: int | None, memory: Memory) -> TimelineInfo:
    """The last measured step of the reference network, reversible against plain."""
    panels = []
    for name, variant in _variants(spec)[:2]:
        report = memory.report((variant, patch, batch, precision))
        panels.append(timeline_panel(name, variant.describe(), report))
    return TimelineInfo(patch, tuple(panels), budget)


def timeline_panel(name: str, words: str, report: MemoryReport,
                   max_points: int = MAX_TIMELINE_POINTS) -> TimelinePanel:
    """The last step of ``report``'s timeline, reduced to at most ``max_points`` points by taking
    the maximum of each run of ops (so the peak survives); x counts ops from the step's start."""
    timeline = report.timeline
    last = max(step for _, _, step in timeline.phases)
    spans = [(s, e, phase) for s, e, phase, step in timeline.spans() if step == last]
    start, end = spans[0][0], spans[-1][1]
    values = timeline.bytes[start:end]
    width = max(1, math.ceil(len(values) / max_points))
    xs, ys = [], []
    for i in range(0, len(values), width):
        xs.append(i)
        ys.append(max(values[i:i + width]))
    reserved: tuple[int, ...] = ()
    if report.allocation_log:
        from revprof.memory.allocator import parse_alloc_conf, reserved_timeline

        conf = parse_alloc_conf((report.allocator or {}).get("config", ""))
        series = reserved_timeline(report.allocation_log, len(timeline.bytes), conf)[start:end]
        reserved = tuple(max(series[i:i + width]) for i in range(0, len(series), width))
    return TimelinePanel(name, words, len(values), tuple(xs), tuple(ys),
                         tuple((s - start, e - start, phase) for s, e, phase in spans),
                         max(values) if values else 0, reserved)


def dice_info(front: Sequence[TrialRow]) -> DiceInfo | None:
    members = sorted((t for t in front if t.dice is not None),
                     key=lambda t: (t.memory_bytes, t.number))
    if not members:
        return None
    return DiceInfo(tuple(t.label for t in members), tuple(t.spec_words for t in members),
                    *(tuple(getattr(t.dice, k) for t in members) for k in ("wt", "tc", "et", "mean")))


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
        dice = t.dice
        rows.append((
            Cell(t.label, t.number), Cell(status, status), Cell(t.spec_words, t.spec_words),
            Cell(patch_text(t.patch), t.patch[0] * t.patch[1] * t.patch[2]) if t.patch else Cell("", None),
            _num(t.batch, str), Cell(t.precision or "", t.precision),
            _num(t.peak_bytes, format_bytes), _num(t.predicted_peak_bytes, format_bytes),
            _num(t.predicted_reserved_bytes, format_bytes), _num(t.params, lambda v: f"{v:,}"),
            *(_num(None if dice is None else getattr(dice, k), lambda v: f"{v:.3f}")
              for k in ("wt", "tc", "et", "mean")),
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


TRAINING_SETTINGS = ("steps", "val_cases", "device", "seed", "lr", "schedule", "foreground")
"""Fixed settings only training uses: a memory-only study's header leaves them out."""


def header_info(source: Source, trials: Sequence[TrialRow], budget: int | None,
                ref: TrialRow | None, date: str | None) -> HeaderInfo:
    """Study, data, fixed settings, budget, devices, versions, date and trial counts."""
    facts: list[tuple[str, str]] = []
    facts.append(("study" if source.kind == "study" else "results",
                  f"{source.name} ({source.location})"))
    if source.data and not source.memory_only:
        facts.append(("data", source.data))
    unused = TRAINING_SETTINGS if source.memory_only else ()  # never used without training
    fixed = {k: v for k, v in source.fixed.items()
             if k != "data" and k not in unused and v is not None}
    if fixed:
        facts.append(("fixed settings", ", ".join(
            f"{k} {patch_text(v) if k == 'patch' and isinstance(v, (list, tuple)) else v}"
            for k, v in sorted(fixed.items()))))
    if source.objectives:
        facts.append(("objectives", ", ".join(source.objectives)))
    facts.append(("memory budget", format_bytes(budget) if budget is not None else "none"))
    devices = sorted({t.device for t in trials if t.device})
    facts.append(("devices", "; ".join(devices) if devices else "not recorded"))
    versions = []
    for key, name in (("torch", "torch"), ("cuda", "CUDA"), ("python", "Python")):
        found = sorted({str(t.environment[key]) for t in trials if t.environment.get(key)})
        if found:
            versions.append(f"{name} {', '.join(found)}")
    if source.revprof_version:
        versions.append(f"revprof {source.revprof_version}")
    facts.append(("versions", "; ".join(versions) if versions else "not recorded"))
    facts.append(("date", date if date is not None else _latest(trials)))
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    facts.append(("trials", f"{len(trials)}: " + ", ".join(
        f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: (_status_order(s), s)))))
    if ref is not None:
        facts.append(("reference network", f"{ref.label}: {ref.spec_words}, patch "
                      f"{patch_text(ref.patch)}, batch {ref.batch or 1}, {ref.precision or 'fp32'} "  # type: ignore[arg-type]
                      f"(depth, patch, breakdown and timeline figures; simulated where no trial "
                      f"measured the configuration)"))
    title = f"revprof report · {source.name}"
    return HeaderInfo(title, tuple(facts))


def _status_order(status: str) -> int:
    order = ("ok", "infeasible", "oom", "diverged", "failed", "interrupted")
    return order.index(status) if status in order else len(order)


def _latest(trials: Sequence[TrialRow]) -> str:
    moments = [t.completed for t in trials if t.completed is not None]
    if not moments:
        return "not recorded"
    latest: datetime = max(moments)
    return latest.strftime("%Y-%m-%d %H:%M UTC") + " (latest trial)"
