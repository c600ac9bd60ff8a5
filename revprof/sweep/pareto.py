"""The Pareto front of a sweep, from the store alone, as rows and as a rich table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from revprof.sweep.record import record_of
from revprof.units import format_bytes


@dataclass(frozen=True)
class Counts:
    """Trials of a study by outcome."""

    complete: int
    running: int
    waiting: int
    failed: int
    ok: int
    infeasible: int
    oom: int
    diverged: int
    interrupted: int

    def line(self, target: int | None = None) -> str:
        done = f"{self.complete}/{target}" if target is not None else f"{self.complete}"
        parts = [f"{done} complete", f"{self.running} running"]
        for name in ("infeasible", "oom", "diverged"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name}")
        if self.failed:
            parts.append(f"{self.failed} failed/interrupted")
        return " · ".join(parts)


def count_trials(trials: Sequence[Any]) -> Counts:
    """Count trials by state and by recorded status."""
    from optuna.trial import TrialState

    def status(t: Any) -> str:
        return str(record_of(t).status or "")

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    return Counts(
        complete=len(complete),
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
        failed=len(failed),
        ok=sum(status(t) == "ok" for t in complete),
        infeasible=sum(status(t) == "infeasible" for t in complete),
        oom=sum(status(t) == "oom" for t in complete),
        diverged=sum(status(t) == "diverged" for t in complete),
        interrupted=sum(status(t) == "interrupted" for t in failed),
    )


def objectives_of(study: Any) -> list[str]:
    """Objective names in direction order (from the study's ``objectives`` user attribute)."""
    names = study.user_attrs.get("objectives")
    if isinstance(names, list) and len(names) == len(study.directions):
        return [str(n) for n in names]
    return ["dice", "peak_bytes", "seconds_per_step"][:len(study.directions)]


def non_dominated(points: Sequence[tuple[int, Sequence[float]]], ties: str = "all") -> list[int]:
    """Numbers of the points no other point dominates, every objective minimised, in input order.

    ``points`` are ``(number, values)``. A point is dominated when another is at least as good
    in every value and better in one. Of points with exactly equal values, ``ties="all"`` keeps
    each, ``ties="first"`` only the lowest number. This is revprof's one Pareto rule (the sweep's
    front and the report's plot both use it).
    """
    if ties not in ("all", "first"):
        raise ValueError(f"ties must be 'all' or 'first'; got {ties!r}")
    front = []
    for number, values in points:
        mine = list(values)
        dominated = False
        for other_number, other_values in points:
            other = list(other_values)
            if other == mine:
                dominated = ties == "first" and other_number < number
            else:
                dominated = all(o <= v for o, v in zip(other, mine, strict=True))
            if dominated:
                break
        if not dominated:
            front.append(number)
    return front


def pareto_front(study: Any, trials: Sequence[Any] | None = None) -> list[Any]:
    """The non-dominated ``ok`` trials (feasible, trained or predicted), best first.

    Infeasible, out-of-memory and diverged trials never enter the front, nor do repeats of an
    earlier trial's network (``duplicate_of``); two different networks with equal values both
    stay.
    """
    from optuna.trial import TrialState

    if trials is None:
        trials = study.get_trials(deepcopy=False)
    signs = [1.0 if d.name.lower() == "minimize" else -1.0 for d in study.directions]
    candidates = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
                  and (record_of(t).status or "ok") == "ok" and not record_of(t).has("duplicate_of")]
    by_number = {t.number: t for t in candidates}
    keyed = [(t.number, [s * v for s, v in zip(signs, t.values, strict=True)]) for t in candidates]
    front = [by_number[n] for n in non_dominated(keyed, ties="all")]
    return sorted(front, key=lambda t: [s * v for s, v in zip(signs, t.values, strict=True)])


def trial_row(trial: Any) -> dict[str, Any]:
    """The figures of one trial, for tables and reports."""
    record = record_of(trial)
    dice = record.dice or {}
    return {
        "number": trial.number,
        "label": record.label,
        "network": record.spec_words if record.spec_words is not None else "",
        "patch": record.patch_text,
        "status": record.status if record.status is not None else trial.state.name.lower(),
        "dice": dice.get("mean"),
        "dice_wt": dice.get("wt"), "dice_tc": dice.get("tc"), "dice_et": dice.get("et"),
        "peak_bytes": record.peak_bytes,
        "predicted_peak_bytes": record.predicted_peak_bytes,
        "seconds_per_step": record.seconds_per_step,
        "params": record.params,
        "device": record.device,
        "dice_from": record.dice_from,
    }


def training_saving(trials: Sequence[Any]) -> str | None:
    """One line on the trainings a sweep saved by training once per set of weights (trials that
    differ only in execution reuse one training's Dice), or None when none was reused."""
    from optuna.trial import TrialState

    records = [record_of(t) for t in trials if t.state == TrialState.COMPLETE]
    complete = [r for r in records if not r.has("duplicate_of")]
    trained = [r for r in complete if r.training == "trained"]
    reused = [r for r in complete if r.training == "reused"]
    if not reused:
        return None
    saved = sum(float(r.source_train_seconds or 0.0) for r in reused)
    spent = sum(float(r.train_seconds or 0.0) for r in trained)
    return (f"trained {len(trained)} network(s) for {len(trained) + len(reused)} trained-or-reused "
            f"trials: {len(reused)} execution(s) reused the Dice of the same weights and were only "
            f"measured, saving about {saved:.0f} s of training ({spent:.0f} s spent)")


def _fmt_bytes(value: Any) -> str:
    return format_bytes(value) if isinstance(value, (int, float)) else "–"


def _fmt(value: Any, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "–"


def trials_table(study: Any, trials: Sequence[Any], title: str, memory_only: bool | None = None,
                 mark: set[int] | None = None) -> Table:
    """A rich table of ``trials``: network, patch, Dice, memory, speed, parameters."""
    if memory_only is None:
        memory_only = bool(study.user_attrs.get("memory_only"))
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("network", min_width=24)
    table.add_column("patch", no_wrap=True)
    if not memory_only:
        table.add_column("Dice", justify="right", no_wrap=True)
        table.add_column("WT/TC/ET", justify="right")
    table.add_column("peak" if not memory_only else "predicted peak", justify="right", no_wrap=True)
    if not memory_only:
        table.add_column("predicted", justify="right", no_wrap=True)
        table.add_column("s/step", justify="right", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for trial in trials:
        row = trial_row(trial)
        number = f"{row['number']}{'*' if mark and trial.number in mark else ''}"
        network = Text.assemble(str(row["network"] or ""),
                                (f" ({row['label']})" if row["label"] else "", "dim"))
        cells = [number, network, row["patch"]]
        if not memory_only:
            regions = "/".join(_fmt(row[k], "{:.2f}") for k in ("dice_wt", "dice_tc", "dice_et"))
            cells += [_fmt(row["dice"], "{:.3f}"), regions if row["dice"] is not None else "–"]
        cells.append(_fmt_bytes(row["peak_bytes"]))
        if not memory_only:
            cells += [_fmt_bytes(row["predicted_peak_bytes"]), _fmt(row["seconds_per_step"], "{:.2f}")]
        cells += [_fmt(row["params"], "{:,}"), row["status"]]
        table.add_row(*cells)
    return table


def front_summary(study: Any, trials: Sequence[Any], limit: int = 4) -> str:
    """One line naming the best Pareto points so far."""
    front = pareto_front(study, trials)
    if not front:
        return "Pareto front: no feasible trial yet"
    names = objectives_of(study)
    shown = []
    for trial in front[:limit]:
        parts = []
        for name, value in zip(names, trial.values, strict=True):
            if name == "dice":
                parts.append(f"Dice {value:.3f}")
            elif name == "peak_bytes":
                parts.append(format_bytes(value))
            elif name == "params":
                parts.append(f"{value / 1e6:.2f} M params")
            else:
                parts.append(f"{value:.2f} s/step")
        shown.append(f"#{trial.number} " + " @ ".join(parts))
    more = f" (+{len(front) - limit} more)" if len(front) > limit else ""
    return f"Pareto front ({len(front)}): " + "; ".join(shown) + more


def markdown_table(trials: Sequence[Any], memory_only: bool) -> str:
    """A Markdown table of trials (for docs)."""
    if memory_only:
        head = "| # | network | patch | predicted peak | params | status |\n|---|---|---|---:|---:|---|"
    else:
        head = ("| # | network | patch | Dice mean | peak | s/step | params | status |\n"
                "|---|---|---|---:|---:|---:|---:|---|")
    lines = [head]
    for trial in trials:
        row = trial_row(trial)
        name = row["network"] + (f" ({row['label']})" if row["label"] else "")
        if memory_only:
            lines.append(f"| {row['number']} | {name} | {row['patch']} | "
                         f"{_fmt_bytes(row['peak_bytes'])} | {_fmt(row['params'], '{:,}')} | "
                         f"{row['status']} |")
        else:
            lines.append(f"| {row['number']} | {name} | {row['patch']} | {_fmt(row['dice'], '{:.3f}')} | "
                         f"{_fmt_bytes(row['peak_bytes'])} | {_fmt(row['seconds_per_step'], '{:.2f}')} | "
                         f"{_fmt(row['params'], '{:,}')} | {row['status']} |")
    return "\n".join(lines)
