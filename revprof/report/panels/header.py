"""The header: study, data, fixed settings, budget, devices, versions, date, trial counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from revprof.report.inputs import Source, TrialRow
from revprof.report.panels.common import patch_text
from revprof.units import format_bytes


class HeaderInfo(NamedTuple):
    title: str
    facts: tuple[tuple[str, str], ...]


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
                      f"{patch_text(ref.patch) if ref.patch else '?'}, batch {ref.recipe.batch}, "
                      f"{ref.recipe.precision} (depth, patch, breakdown and timeline figures; "
                      f"simulated where no trial measured the configuration)"))
        facts.append(("recipe", f"{ref.recipe.describe()}; {ref.recipe.run_words()}"))
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
