"""Live (and predicted reserved) bytes over the last measured training step, per execution."""

from __future__ import annotations

import math
from typing import NamedTuple

from revprof.memory import MemoryReport
from revprof.report.panels.common import variants
from revprof.report.panels.memory import Memory
from revprof.recipe import Recipe
from revprof.spec import ArchSpec

MAX_TIMELINE_POINTS = 1500


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


def timeline_info(spec: ArchSpec, patch: tuple[int, int, int], recipe: Recipe,
                  budget: int | None, memory: Memory) -> TimelineInfo:
    """The last measured step of the reference network, reversible against plain."""
    panels = []
    for name, variant in variants(spec)[:2]:
        report = memory.report((variant, patch, recipe))
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
