"""``revprof plan``: the best network or the largest patch that trains in a memory budget."""

from __future__ import annotations

import json
import time
import statistics
from pathlib import Path
from typing import Annotated, Literal, get_args

import typer
from rich.progress import Progress, SpinnerColumn, TimeElapsedColumn
from rich.table import Table

from revprof.cli._common import choice, console, description_column, err_console, handle_errors
from revprof.bounds import MAX_DEPTH, check_float, check_int
from revprof.errors import RevprofError
from revprof.cli.model_options import (
    InChannels, InputShape, Model, ModelKwargs, PatchMultiple, input_patch, model_from_options,
)
from revprof.cli.recipe_options import DeviceMemory, RecipeOptions, with_recipe_options
from revprof.cli.spec_options import (
    Arch, Checkpoint, DecoderDepth, Depth, EncoderDepth, Groups, Growth, Levels, MaxWidth,
    Reversible, SpecOptions, SpecPath, Width, Widths, given, network_or_file,
)
from revprof.memory.cards import parse_device_memory
from revprof.memory.device import DEVICE_CLASSES, DeviceClass, device_class_of
from revprof.memory.planner import (
    CRITERIA, DEFAULT_MAX_PATCH, Candidate, Criterion, CriterionName, Plan, best_networks, largest_batch,
    largest_patch,
)
from revprof.spec import parse_patch, parse_spatial
from revprof.units import format_bytes, parse_bytes


def _title(plan: Plan) -> str:
    c = plan.criterion
    return (f"{plan.question} within {format_bytes(plan.budget_bytes)} by {c.name} need"
            + (f", {100 * c.margin:g}% margin (limit {format_bytes(plan.limit_bytes)})" if c.margin else ""))


def _table(plan: Plan) -> Table:
    """One candidate: every part of its need, one per row; several: one row each."""
    c = plan.criterion
    if plan.question == "largest patch":
        (cand,) = plan.candidates
        table = Table(title=f"{_title(plan)}\n{cand.spec.describe()}", show_header=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("patch", "x".join(map(str, cand.patch)) + f" ({cand.voxels:,} voxels)")
        table.add_row("allocated (tensor peak)", format_bytes(cand.peak_bytes))
        table.add_row("reserved (allocator model)", format_bytes(cand.reserved_bytes))
        table.add_row(f"+ CUDA context ({c.device_class if c.context is None else 'given'})",
                      format_bytes(cand.context_bytes))
        table.add_row("+ workspace allowance", format_bytes(cand.workspace_bytes))
        table.add_row("= device need", format_bytes(cand.device_bytes))
        table.add_row(f"{c.name} need / budget", f"{100 * c.need(cand) / plan.budget_bytes:.1f}%")
        return table
    first = plan.candidates[0]
    table = Table(title=f"{_title(plan)}\ndevice need = reserved + {format_bytes(first.context_bytes)} "
                        f"CUDA context + {format_bytes(first.workspace_bytes)} workspace allowance")
    for column in ("#", "network", "patch", "parameters", "allocated", "reserved", "device need",
                   "of budget"):
        table.add_column(column, justify="left" if column in ("network", "patch") else "right",
                         overflow="fold", min_width=20 if column == "network" else None)
    for rank, cand in enumerate(plan.candidates, start=1):
        table.add_row(str(rank), cand.spec.describe(), "x".join(map(str, cand.patch)), f"{cand.params:,}",
                      format_bytes(cand.peak_bytes), format_bytes(cand.reserved_bytes),
                      format_bytes(cand.device_bytes), f"{100 * c.need(cand) / plan.budget_bytes:.0f}%")
    return table


def _checked(plan: Plan) -> Table:
    one_network = plan.question == "largest patch"
    table = Table(title=f"{len(plan.checked)} candidates checked by simulation")
    for column in (() if one_network else ("network",)) + (
            "patch", "voxels", "allocated", "reserved", "device need", "fits"):
        table.add_column(column, justify="left" if column in ("network", "patch") else "right",
                         overflow="fold")
    for cand in plan.checked:
        table.add_row(*(() if one_network else (cand.spec.describe(),)),
                      "x".join(map(str, cand.patch)), f"{cand.voxels:,}",
                      format_bytes(cand.peak_bytes), format_bytes(cand.reserved_bytes),
                      format_bytes(cand.device_bytes), "yes" if plan.fits(cand) else "no")
    return table


def _percent(text: str) -> float:
    """``5%`` or ``0.05`` as a fraction."""
    value = text.strip()
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise typer.BadParameter(f"must be a percentage such as 5%; got {text!r}") from None


def _median_shape(data: Path) -> tuple[float, float, float]:
    """The median image shape of the dataset in ``data``."""
    from revprof.data.layouts import discover
    from revprof.data.nifti import open_nifti

    index = discover(data)
    if not index.cases:
        raise RevprofError(f"no cases found in {data}")
    shapes = []
    for case in index.cases:
        path = case.images[0]
        shapes.append(tuple(open_nifti(path, case.case_id).shape[:3]))
    return tuple(float(statistics.median(s[a] for s in shapes)) for a in range(3))  # type: ignore[return-value]


Search = Literal["depth", "width", "both"]
"""What ``plan --patch`` varies: the depth, the width or both."""

class _OutOfTime(Exception):
    """--max-seconds passed: the search stops after the prediction in progress."""


def _best_so_far(predicted: list[Candidate], rule: Criterion, budget_bytes: int,
                 largest: bool) -> Candidate | None:
    """Of the configurations predicted before the stop, the one the question asks for that fits by
    ``rule``: the most voxels (largest patch) or the most parameters, then the least need."""
    fitting = [c for c in predicted if rule.need(c) <= rule.limit(budget_bytes)]
    if not fitting:
        return None
    if largest:
        return max(fitting, key=lambda c: (c.voxels, -rule.need(c)))
    return max(fitting, key=lambda c: (c.params, -rule.need(c)))


def plan(
    ctx: typer.Context,
    budget: Annotated[str | None, typer.Option("--budget", help="Memory budget, e.g. 11GiB, 12GB, "
                                               "800MiB (default: --device-memory's total).")] = None,
    device_memory: DeviceMemory = None,
    arch: Arch = "revunet", levels: Levels = None, width: Width = None, widths: Widths = None,
    growth: Growth = 2.0, max_width: MaxWidth = None, depth: Depth = None,
    encoder_depth: EncoderDepth = None, decoder_depth: DecoderDepth = None,
    reversible: Reversible = None, checkpoint: Checkpoint = False, groups: Groups = None,
    spec_path: SpecPath = None,
    patch: Annotated[str | None, typer.Option("--patch", help="Fix the patch and search the network "
                                              "(depth and width); without it, find the largest patch.")] = None,
    max_patch: Annotated[str, typer.Option("--max-patch", help="Largest patch to consider.")] =
        ",".join(map(str, DEFAULT_MAX_PATCH)),
    search: Annotated[Search, typer.Option(
        "--search", help="With --patch: depth, width or both.",
        parser=choice("search", get_args(Search), usage=True))] = "both",
    max_depth: Annotated[int, typer.Option("--max-depth", min=1, help="Deepest network considered.")] = 8,
    top: Annotated[int, typer.Option("--top", min=1, help="Candidates to print.")] = 5,
    criterion: Annotated[CriterionName, typer.Option(
        "--criterion", help="What must fit: device (reserved + CUDA context + workspace), reserved "
        "or allocated.", parser=choice("criterion", CRITERIA))] = "device",
    margin: Annotated[str, typer.Option("--margin", help="Share of the budget kept free, e.g. 5%.")] = "0%",
    context: Annotated[str | None, typer.Option("--context", help="CUDA context size, e.g. 450MiB "
                                                "(default: the allowance of --device-class).")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="cuDNN/cuBLAS workspace "
                                                  "allowance, e.g. 512MiB (default 256MiB).")] = None,
    device_class: Annotated[DeviceClass, typer.Option(
        "--device-class", help="Context allowance: " + ", ".join(DEVICE_CLASSES) + ".",
        parser=choice("device class", DEVICE_CLASSES))] = "default",
    alloc_conf: Annotated[str | None, typer.Option("--alloc-conf", help="PYTORCH_CUDA_ALLOC_CONF to "
                                                   "model (default: the environment's).")] = None,
    data: Annotated[Path | None, typer.Option("--data", exists=True, file_okay=False, help="Dataset "
                                              "folder: patches follow its median image shape.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    model: Model = None, model_kwargs: ModelKwargs = None,
    in_channels: InChannels = None, patch_multiple: PatchMultiple = None,
    input_shape: InputShape = None,
    recipe_options: RecipeOptions = RecipeOptions(),
    max_seconds: Annotated[float, typer.Option(
        "--max-seconds", min=0, help="Stop the search after this long (0: no limit) and print the "
        "best fitting configuration predicted so far, marked incomplete. One prediction of a large "
        "network can take tens of seconds on a CPU.")] = 240.0,
) -> None:
    """What fits in a memory budget: the largest patch for a network, or the best network for a patch
    (with --model: the largest patch, or with --patch the largest batch).

    Every answer fits by the chosen criterion (default: the device need) and is verified by a
    simulation; all parts of the need are printed, with the candidates that were checked. Progress
    shows on stderr (also with --json); Ctrl-C stops."""
    card = parse_device_memory(device_memory) if device_memory is not None else None
    if budget is None and card is None:
        raise RevprofError("give the memory to plan for: --budget SIZE (e.g. 11GiB) or "
                           "--device-memory SIZE|CARD (e.g. rtx3060)")
    budget_bytes = parse_bytes(budget) if budget is not None else card.total_bytes  # type: ignore[union-attr]
    if card is not None and not given(ctx, "device_class"):
        device_class = device_class_of(card)
    rule = Criterion(criterion, _percent(margin), parse_bytes(context) if context else None,
                     parse_bytes(workspace) if workspace else None, device_class, alloc_conf,
                     card=card)
    options = SpecOptions(arch, levels, width, widths, growth, max_width, depth, encoder_depth,
                          decoder_depth, reversible, checkpoint, groups)
    factory = model_from_options(model, model_kwargs, in_channels, patch_multiple, options, ctx,
                                 input_shape)
    fixed = input_patch(ctx, input_shape, patch)
    _check_search_options(ctx, fixed is not None, factory is not None, max_depth, top, max_seconds)
    median = _median_shape(data) if data is not None else None
    spec, loaded = network_or_file(ctx, options, factory, spec_path)
    # the trial's recipe (with its batch and precision) unless given; --patch stays what it says
    step_recipe = recipe_options.resolve(loaded.settings.recipe if loaded is not None else None)
    started = time.monotonic()
    predicted: list[Candidate] = []
    # Progress goes to stderr, so it shows with --json too (stdout keeps the one JSON object).
    with Progress(SpinnerColumn(), description_column(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=console.quiet) as progress:
        task = progress.add_task("predicting the first configuration", total=None)

        def seen(candidate: Candidate) -> None:
            predicted.append(candidate)
            progress.update(task, description=f"{len(predicted)} predicted · last "
                                              f"{candidate.spec.describe()} "
                                              f"{'x'.join(map(str, candidate.patch))}: "
                                              f"{format_bytes(candidate.peak_bytes)}")
            if max_seconds and time.monotonic() - started > max_seconds:
                raise _OutOfTime

        try:
            if fixed is None:
                limit = parse_patch(max_patch)
                if median is not None:  # as nnU-Net: no patch larger than the median image
                    step = 2 ** (spec.levels - 1)
                    limit = tuple(min(m, -(-int(s) // step) * step) for m, s in zip(limit, median))
                result = largest_patch(spec, budget_bytes, limit, step_recipe, seen,
                                       criterion=rule, median_shape=median)
            elif factory is not None:
                result = largest_batch(factory, parse_spatial(fixed), budget_bytes, step_recipe,
                                       on_evaluate=seen, criterion=rule)
            else:
                result = best_networks(spec, parse_patch(fixed), budget_bytes, max_depth=max_depth,
                                       search_depth=search in ("depth", "both"),
                                       search_width=search in ("width", "both"),
                                       recipe=step_recipe, top=top, on_evaluate=seen,
                                       criterion=rule)
        except _OutOfTime:
            result = None
    if result is None:
        _stopped(predicted, rule, budget_bytes, fixed is None, time.monotonic() - started,
                 max_seconds, as_json)
        return
    if as_json:
        print(json.dumps({"kind": "plan", "complete": True, **result.to_dict(),
                          "recipe": step_recipe.to_dict(),
                          "median_shape": list(median) if median else None}))
        return
    if not result.candidates:
        smallest = result.rejected[0] if result.rejected else None
        closest = (f"; the smallest candidate, {smallest.spec.describe()}, needs "
                   f"{format_bytes(rule.need(smallest))} by the {rule.name} criterion") if smallest else ""
        at = f" at patch {'x'.join(map(str, parse_spatial(fixed)))}" if fixed is not None else ""
        raise RevprofError(f"nothing fits in {format_bytes(budget_bytes)}{at}{closest}")
    console.print(_table(result))
    console.print(f"recipe {step_recipe.describe()}", highlight=False)
    if median is not None:
        console.print(f"patches follow the median image shape of {data}: "
                      + "x".join(f"{m:g}" for m in median))
    for note in result.notes:
        console.print(note)
    console.print(_checked(result))


MAX_TOP = 1000
MAX_SECONDS = 7 * 24 * 3600.0


def _check_search_options(ctx: typer.Context, fixed_patch: bool, foreign: bool, max_depth: int,
                          top: int, max_seconds: float) -> None:
    """Bound the search options and refuse those the chosen search does not use: ``--search``,
    ``--max-depth`` and ``--top`` shape the network search (``--patch`` with revprof's own
    networks), ``--max-patch`` and ``--data`` the patch search (no ``--patch``)."""
    check_int("--max-depth", max_depth, 1, MAX_DEPTH)
    check_int("--top", top, 1, MAX_TOP)
    check_float("--max-seconds", max_seconds, 0.0, MAX_SECONDS)
    if fixed_patch:
        search = "the batch search of --model with --patch" if foreign else "the network search (--patch)"
        idle = ["max_patch", "data"] + (["search", "max_depth", "top"] if foreign else [])
    else:
        search, idle = "the patch search (no --patch)", ["search", "max_depth", "top"]
    for name in idle:
        if given(ctx, name):
            flag = "--" + name.replace("_", "-")
            raise RevprofError(f"{flag} does not act on {search}: drop {flag}")


def _stopped(predicted: list[Candidate], rule: Criterion, budget_bytes: int, largest: bool,
             seconds: float, max_seconds: float, as_json: bool) -> None:
    """Report a search stopped by --max-seconds: a warning on stderr, then the best so far."""
    best = _best_so_far(predicted, rule, budget_bytes, largest)
    err_console.print(f"[yellow]warning:[/] stopped after {seconds:.0f} s (--max-seconds "
                      f"{max_seconds:g}) with {len(predicted)} configurations predicted; the "
                      f"answer is the best of those, not of the whole search",
                      highlight=False, soft_wrap=True, markup=True)
    if as_json:
        print(json.dumps({"kind": "plan", "complete": False, "budget_bytes": budget_bytes,
                          "criterion": rule.name, "evaluated": len(predicted),
                          "seconds": round(seconds, 1),
                          "best_so_far": best.to_dict() if best else None}))
        return
    if best is None:
        raise RevprofError(f"no configuration predicted within --max-seconds {max_seconds:g} "
                           f"fits in {format_bytes(budget_bytes)}; allow more time")
    console.print(f"best so far: {best.spec.describe()} at patch "
                  f"{'x'.join(map(str, best.patch))}, {best.params:,} parameters, needs "
                  f"{format_bytes(rule.need(best))} by the {rule.name} criterion",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("plan")(handle_errors(with_recipe_options(plan)))
