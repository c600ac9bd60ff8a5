"""``revprof measure``: peak training memory of one network, measured or predicted."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from revprof.bounds import MAX_SYNTHETIC_CASES, check_int, check_output_file
from revprof.cli._common import choice, console, handle_errors
from revprof.cli.model_options import (
    InChannels, InputShape, Model, ModelKwargs, PatchMultiple, input_patch, model_from_options,
)
from revprof.cli.recipe_options import DeviceMemory, RecipeOptions, with_recipe_options
from revprof.cli.spec_options import (
    Arch, Checkpoint, DecoderDepth, Depth, EncoderDepth, Groups, Growth, Levels, MaxWidth,
    Reversible, SpecOptions, SpecPath, Width, Widths, file_default, given, network_or_file,
)
from revprof.data.resample import parse_spacing
from revprof.errors import RevprofError
from revprof.memory import BACKENDS, measure_memory, resolve_backend
from revprof.memory.measure import Backend as BackendName
from revprof.memory.cards import parse_device_memory
from revprof.memory.device import allocator_capacity, device_class_of, device_need
from revprof.cli.render import report_tables, training_tables
from revprof.spec import ArchSpec, parse_patch, validate_patch
from revprof.sweep.record import TrialRecord
from revprof.train import TrainResult, TrainSettings, append_row, run_training
from revprof.train.results import check_training_outputs
from revprof.train.run import OutputsNotSaved

Patch = Annotated[str, typer.Option("--patch", help="Patch size: 128 or D,H,W such as 160,192,160.")]
Backend = Annotated[BackendName, typer.Option("--backend", help="auto (cuda if a GPU is visible, else "
                                              "simulate), cuda, cpu or simulate.",
                                              parser=choice("backend", BACKENDS))]


def measure(
    ctx: typer.Context,
    arch: Arch = "revunet", levels: Levels = None, width: Width = None, widths: Widths = None,
    growth: Growth = 2.0, max_width: MaxWidth = None, depth: Depth = None,
    encoder_depth: EncoderDepth = None, decoder_depth: DecoderDepth = None,
    reversible: Reversible = None, checkpoint: Checkpoint = False, groups: Groups = None,
    spec_path: SpecPath = None,
    patch: Patch = "128", backend: Backend = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeline: Annotated[bool, typer.Option("--timeline/--no-timeline",
                                           help="Include the op-by-op timeline in --json.")] = False,
    snapshot: Annotated[Path | None, typer.Option("--snapshot", help="Write the step as a memory "
                                                  "snapshot (pickle) for pytorch.org/memory_viz: "
                                                  "the real one on CUDA, else the simulated one.")] = None,
    alloc_conf: Annotated[str | None, typer.Option("--alloc-conf", help="PYTORCH_CUDA_ALLOC_CONF the "
                                                   "reserved prediction models (default: the "
                                                   "environment's).")] = None,
    device_memory: DeviceMemory = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, rich_help_panel="Training run",
                                              help="Train for N steps on BraTS data and report Dice.")] = None,
    data: Annotated[Path | None, typer.Option("--data", rich_help_panel="Training run",
                                              help="BraTS data folder (default: synthetic demo cases).")] = None,
    val_cases: Annotated[int, typer.Option("--val-cases", min=0, rich_help_panel="Training run",
                                           help="Held-out cases for Dice.")] = 2,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel="Training run",
                                      help="Seeds the weights, the case split and the patch "
                                           "sampler.")] = 0,
    device: Annotated[str, typer.Option("--device", rich_help_panel="Training run",
                                        help="auto, cpu, cuda or cuda:N.")] = "auto",
    convention: Annotated[str | None, typer.Option("--convention", rich_help_panel="Training run",
                                                   help="Force a label convention.")] = None,
    crop: Annotated[str | None, typer.Option("--crop", rich_help_panel="Training run",
                                             help="Centre crop/pad size (default 160,192,160 or the "
                                                  "brain box of smaller volumes).")] = None,
    spacing: Annotated[str, typer.Option("--spacing", rich_help_panel="Training run",
                                         help="Target voxel size in mm: cases at another spacing are "
                                              "resampled to it (images linear, labels nearest); "
                                              "none keeps each case's.")] = "1,1,1",
    results: Annotated[Path, typer.Option("--results", rich_help_panel="Training run",
                                          help="Results table the run is appended to.")] = Path("results/runs.csv"),
    save_model: Annotated[Path | None, typer.Option("--save-model", rich_help_panel="Training run",
                                                    help="Write the trained weights (a PyTorch "
                                                         "state dict) to this file.")] = None,
    save_predictions: Annotated[Path | None, typer.Option("--save-predictions", rich_help_panel="Training run",
                                                          help="Write NIfTI label maps of the "
                                                               "validation cases here.")] = None,
    model: Model = None, model_kwargs: ModelKwargs = None,
    in_channels: InChannels = None, patch_multiple: PatchMultiple = None,
    input_shape: InputShape = None,
    recipe_options: RecipeOptions = RecipeOptions(),
) -> None:
    """Peak memory of a training step (forward, loss, backward, optimizer: the paper's Adam and
    soft Dice, or another recipe) with its breakdown; with --steps, a short training run with
    Dice for WT, TC and ET. With --spec FILE (from revprof export), the network, recipe and
    settings of a sweep trial."""
    options = SpecOptions(arch, levels, width, widths, growth, max_width, depth, encoder_depth,
                          decoder_depth, reversible, checkpoint, groups)
    factory = model_from_options(model, model_kwargs, in_channels, patch_multiple, options, ctx,
                                 input_shape)
    patch = input_patch(ctx, input_shape, patch) or patch  # type: ignore[assignment]
    if factory is not None and steps is not None:
        raise RevprofError("--steps trains revprof's own networks; with --model, measure memory only")
    spec, loaded = network_or_file(ctx, options, factory, spec_path)
    if loaded is not None:  # the trial's settings unless given here
        patch = file_default(ctx, "patch", patch, loaded, ",".join(map(str, loaded.patch)))
    step_recipe = recipe_options.resolve(loaded.settings.recipe if loaded is not None else None,
                                         steps=steps)
    if steps is None and (save_model is not None or save_predictions is not None):
        if loaded is None:
            raise RevprofError("--save-model and --save-predictions write a training run's "
                               "results: add --steps N (or --spec FILE, whose recipe sets them)")
        steps = step_recipe.steps  # a trial's spec file trains for its recipe's steps
    _refuse_idle_options(ctx, steps is not None, as_json)
    if steps is not None and device_memory is not None:
        raise RevprofError("--device-memory predicts whether the step fits a card; a training run "
                           "(--steps) measures on the device it runs on: drop one of them")
    if steps is not None and snapshot is not None:
        raise RevprofError("--snapshot writes the memory measurement's step; it cannot be combined "
                           "with --steps (a training run)")
    if steps is not None:
        check_int("--val-cases", val_cases, 0, MAX_SYNTHETIC_CASES)
        check_training_outputs(results, save_model, save_predictions, seed)
        base = loaded.settings if loaded is not None else TrainSettings()
        here: dict[str, Any] = {"data": Path(data) if data else None, "val_cases": val_cases, "device": device,
                "seed": seed, "convention": convention,
                "crop": parse_patch(crop) if crop else None, "spacing": parse_spacing(spacing)}
        settings = dataclasses.replace(
            base, patch=validate_patch(spec, patch), recipe=step_recipe,
            **{name: value for name, value in here.items() if loaded is None or given(ctx, name)})
        try:
            result = run_training(spec, settings, progress=not as_json, save_model=save_model,
                                  save_predictions=save_predictions)
        except OutputsNotSaved as failure:  # the run is recorded first: training is never lost
            append_row(result_row(spec, settings, failure.result), results)
            raise RevprofError(f"{failure}; the run itself is appended to {results}") from None
        append_row(result_row(spec, settings, result), results)
        if as_json:
            print(json.dumps({"kind": "training", "spec": spec.to_dict(), "patch": list(settings.patch),
                              "batch": step_recipe.batch, "precision": step_recipe.precision,
                              "recipe": step_recipe.to_dict(), "backend": "training run",
                              **result.to_dict()}))
        else:
            console.print(training_tables(spec, settings, result))
            console.print(f"appended to {results}")
        return
    card = parse_device_memory(device_memory) if device_memory is not None else None
    capacity = allocator_capacity(card) if card is not None else None
    if snapshot is not None:
        check_output_file(snapshot, "--snapshot", example="step.pickle")
    if snapshot is not None and resolve_backend(backend) == "cuda":
        from revprof.memory.snapshot import recording_cuda_history

        with recording_cuda_history(snapshot):
            report = measure_memory(spec, patch, step_recipe, backend=backend, alloc_conf=alloc_conf,
                                    device_memory=capacity)
    else:
        report = measure_memory(spec, patch, step_recipe, backend=backend, alloc_conf=alloc_conf,
                                device_memory=capacity)
        if snapshot is not None:
            from revprof.memory.allocator import parse_alloc_conf
            from revprof.memory.measure import alloc_conf_of
            from revprof.memory.snapshot import simulated_snapshot, write_snapshot

            write_snapshot(simulated_snapshot(report.allocation_log or [], report.timeline.phases,
                                              parse_alloc_conf(alloc_conf_of(alloc_conf))), snapshot)
    if as_json:
        need = device_need(report.predicted_reserved_bytes or 0, context=report.context_bytes,
                           device_class=device_class_of(card) if card is not None else "default")
        print(json.dumps({"kind": "memory", **report.to_dict(timeline=timeline),
                          "device_need": need.to_dict()}))
    else:
        console.print(report_tables(report))
        if snapshot is not None:
            console.print(f"snapshot written to {snapshot} (open it at https://pytorch.org/memory_viz)")


_TRAINING_ONLY = ("data", "val_cases", "seed", "device", "convention", "crop", "spacing", "results",
                  "save_model", "save_predictions")
_MEMORY_ONLY = ("backend", "alloc_conf", "timeline")


def _refuse_idle_options(ctx: typer.Context, training: bool, as_json: bool) -> None:
    """Refuse an option that would act on nothing: a training-run option without ``--steps``, a
    memory-measurement option with it, ``--timeline`` without ``--json``."""
    idle = _MEMORY_ONLY if training else _TRAINING_ONLY
    for name in idle:
        if given(ctx, name):
            flag = "--" + name.replace("_", "-")
            if training:
                raise RevprofError(f"{flag} acts on the memory measurement, which a training run "
                                   f"(--steps) does not make: drop {flag}")
            raise RevprofError(f"{flag} acts only on a training run: add --steps N, or drop {flag}")
    if not as_json and given(ctx, "timeline"):
        raise RevprofError("--timeline adds the timeline to --json output: add --json, or drop "
                           "--timeline")


def result_row(spec: ArchSpec, settings: TrainSettings, result: TrainResult) -> dict[str, object]:
    """One row of the results table: the run's :class:`TrialRecord` as columns (see
    ``docs/store-schema.md`` for their meanings) with the run's settings."""
    recipe = settings.recipe
    record = TrialRecord(
        spec=spec.to_dict(), spec_words=spec.describe(), patch=list(settings.patch),
        batch=recipe.batch, precision=recipe.precision, recipe=recipe.to_dict(),
        status=result.status, peak_bytes=result.peak_bytes,
        predicted_peak_bytes=result.predicted_peak_bytes,
        dice=result.dice, dice_per_case=[vars(c) for c in result.dice_per_case],
        seconds_per_step=result.seconds_per_step, voxels_per_second=result.voxels_per_second,
        device=result.device, environment=result.environment, error=result.error)
    columns = {**record.result_columns(), "steps": recipe.steps, "seed": settings.seed,
               "data": str(settings.data) if settings.data else "synthetic",
               "loss_first": result.losses[0] if result.losses else None,
               "loss_last": result.losses[-1] if result.losses else None}
    order = ("spec", "spec_words", "patch", "batch", "precision", "steps", "seed", "data", "status",
             "peak_bytes", "predicted_peak_bytes", "dice_wt", "dice_tc", "dice_et", "dice_mean",
             "seconds_per_step", "voxels_per_second", "device", "loss_first", "loss_last",
             "dice_per_case", "environment", "error", "recipe")
    return {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **{name: columns[name] for name in order}}


def register(app: typer.Typer) -> None:
    app.command("measure")(handle_errors(with_recipe_options(measure)))
