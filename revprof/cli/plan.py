"""``revprof plan``: the best network or the largest patch that trains in a memory budget."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from revprof.cli._common import console, handle_errors
from revprof.errors import RevprofError
from revprof.cli.measure import Batch, Precision
from revprof.cli.spec_options import (
    Arch, Checkpoint, DecoderDepth, Depth, EncoderDepth, Groups, Growth, Levels, MaxWidth,
    Reversible, SpecOptions, Width, Widths,
)
from revprof.memory.planner import DEFAULT_MAX_PATCH, Candidate, Plan, best_networks, largest_patch
from revprof.spec import parse_patch
from revprof.units import format_bytes, parse_bytes


def _table(plan: Plan) -> Table:
    table = Table(title=f"{plan.question} within {format_bytes(plan.budget_bytes)} "
                        f"({plan.evaluated} configurations predicted)")
    for column in ("#", "network", "patch", "parameters", "predicted peak", "of budget"):
        table.add_column(column, justify="left" if column in ("network", "patch") else "right",
                         overflow="fold", min_width=30 if column == "network" else None)
    for rank, c in enumerate(plan.candidates, start=1):
        table.add_row(str(rank), c.spec.describe(), "x".join(map(str, c.patch)), f"{c.params:,}",
                      format_bytes(c.peak_bytes), f"{100 * c.peak_bytes / plan.budget_bytes:.0f}%")
    return table


def plan(
    budget: Annotated[str, typer.Option("--budget", help="Memory budget, e.g. 11GiB, 12GB, 800MiB.")],
    arch: Arch = "revunet", levels: Levels = None, width: Width = None, widths: Widths = None,
    growth: Growth = 2.0, max_width: MaxWidth = None, depth: Depth = None,
    encoder_depth: EncoderDepth = None, decoder_depth: DecoderDepth = None,
    reversible: Reversible = None, checkpoint: Checkpoint = False, groups: Groups = None,
    patch: Annotated[str | None, typer.Option("--patch", help="Fix the patch and search the network "
                                              "(depth and width); without it, find the largest patch.")] = None,
    max_patch: Annotated[str, typer.Option("--max-patch", help="Largest patch to consider.")] =
        ",".join(map(str, DEFAULT_MAX_PATCH)),
    search: Annotated[str, typer.Option("--search", help="With --patch: depth, width or both.")] = "both",
    max_depth: Annotated[int, typer.Option("--max-depth", min=1, help="Deepest network considered.")] = 8,
    top: Annotated[int, typer.Option("--top", min=1, help="Candidates to print.")] = 5,
    batch: Batch = 1, precision: Precision = "fp32",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What fits in a memory budget: the largest patch for a network, or the best network for a patch."""
    budget_bytes = parse_bytes(budget)
    spec = SpecOptions(arch, levels, width, widths, growth, max_width, depth, encoder_depth,
                       decoder_depth, reversible, checkpoint, groups).build()
    if search not in ("depth", "width", "both"):
        raise typer.BadParameter(f"must be depth, width or both; got {search!r}", param_hint="--search")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("predicting", total=None)

        def seen(candidate: Candidate) -> None:
            progress.update(task, description=f"{candidate.spec.describe()} "
                                              f"{'x'.join(map(str, candidate.patch))}: "
                                              f"{format_bytes(candidate.peak_bytes)}")

        if patch is None:
            result = largest_patch(spec, budget_bytes, parse_patch(max_patch), batch, precision, seen)
        else:
            result = best_networks(spec, parse_patch(patch), budget_bytes, max_depth=max_depth,
                                   search_depth=search in ("depth", "both"),
                                   search_width=search in ("width", "both"), batch=batch,
                                   precision=precision, top=top, on_evaluate=seen)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    if not result.candidates:
        smallest = result.rejected[0] if result.rejected else None
        closest = (f"; the smallest candidate, {smallest.spec.describe()}, needs "
                   f"{format_bytes(smallest.peak_bytes)}") if smallest else ""
        raise RevprofError(f"nothing fits in {format_bytes(budget_bytes)} at patch "
                           f"{'x'.join(map(str, parse_patch(patch)))}{closest}")
    console.print(_table(result))


def register(app: typer.Typer) -> None:
    app.command("plan")(handle_errors(plan))
