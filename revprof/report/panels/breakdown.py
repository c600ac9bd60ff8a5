"""Memory at the peak by category, and saved activations per level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from revprof.memory import CATEGORIES
from revprof.report.inputs import TrialRow
from revprof.report.panels.common import patch_text, variants
from revprof.report.panels.memory import Memory
from revprof.spec import ArchSpec

CATEGORY_LABELS = {"parameters": "parameters", "gradients": "gradients",
                   "optimizer_state": "optimizer state", "activations": "activations",
                   "other": "temporaries & other"}
MAX_BREAKDOWN_BARS = 8


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


def breakdown_info(ref: TrialRow, front: Sequence[TrialRow], memory: Memory) -> BreakdownInfo:
    """The reference network run each way, then the given trials (the Pareto front, then other
    architectures at the reference patch; at most 8 bars in all, each trial once); activations
    per level for the reference network's executions."""
    assert ref.spec and ref.patch
    bars: list[BreakdownBar] = []
    level_bars: list[LevelBars] = []
    levels = tuple([f"level {i}" for i in range(ref.spec.levels)] + ["loss"])
    for name, variant in variants(ref.spec):
        categories, parts = memory.breakdown((variant, ref.patch, ref.recipe))
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
