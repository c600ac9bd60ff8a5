"""``revprof model``: print the network a spec builds."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from revprof.cli._common import console, handle_errors
from revprof.cli.model_options import InChannels, InputShape, Model, ModelKwargs, input_patch, model_from_options
from revprof.cli.spec_options import (
    Arch, Checkpoint, DecoderDepth, Depth, EncoderDepth, Groups, Growth, Levels, MaxWidth,
    Reversible, SpecOptions, SpecPath, Width, Widths, spec_or_file,
)
from revprof.errors import RevprofError
from revprof.spec import parse_spatial
from revprof.nn.summary import FactoryModelSummary, summarize, summarize_factory


def model(
    ctx: typer.Context,
    arch: Arch = "revunet", levels: Levels = None, width: Width = None, widths: Widths = None,
    growth: Growth = 2.0, max_width: MaxWidth = None, depth: Depth = None,
    encoder_depth: EncoderDepth = None, decoder_depth: DecoderDepth = None,
    reversible: Reversible = None, checkpoint: Checkpoint = False, groups: Groups = None,
    spec_path: SpecPath = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    model: Model = None, model_kwargs: ModelKwargs = None, in_channels: InChannels = None,
    input_shape: InputShape = None,
) -> None:
    """Print the network: widths, blocks and execution per level, parameters per level and in total
    (with --model: its layers and parameters; with --spec FILE: the network of a sweep trial)."""
    options = SpecOptions(arch, levels, width, widths, growth, max_width, depth, encoder_depth,
                          decoder_depth, reversible, checkpoint, groups)
    factory = model_from_options(model, model_kwargs, in_channels, None, options, ctx, input_shape)
    if factory is not None:
        if spec_path is not None:
            raise RevprofError("--spec and --model both name a network; give one of them")
        if input_shape is not None:  # its outputs at that input (a forward over fake tensors)
            factory = factory.checked(parse_spatial(input_patch(ctx, input_shape, None) or ()), targets=None)
        _print_factory(summarize_factory(factory), as_json)
        return
    spec, _ = spec_or_file(ctx, options, spec_path)
    summary = summarize(spec)
    if as_json:
        print(json.dumps({"kind": "model", **summary.to_dict()}, indent=2))
        return
    table = Table(title=spec.describe())
    for column in ("part", "width", "blocks", "execution", "parameters"):
        table.add_column(column, justify="right" if column in ("width", "blocks", "parameters") else "left")
    for row in summary.rows:
        table.add_row(row.part, str(row.width), str(row.blocks) if row.blocks else "",
                      row.execution, f"{row.parameters:,}")
    table.add_section()
    table.add_row("total", "", "", "", f"{summary.parameters:,}")
    console.print(table)


def _print_factory(summary: FactoryModelSummary, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"kind": "model", **summary.to_dict()}, indent=2))
        return
    spec = summary.spec
    outputs = " · outputs " + ", ".join("x".join(map(str, o)) for o in spec.outputs) if spec.outputs else ""  # type: ignore[attr-defined]
    table = Table(title=f"{spec.describe()} · input channels {spec.in_channels}{outputs}")  # type: ignore[attr-defined]
    for column in ("layer", "type", "parameters"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for row in summary.rows:
        indent = "  " * row.name.count(".")
        table.add_row(f"{indent}{row.name}", row.kind, f"{row.parameters:,}")
    table.add_section()
    table.add_row("total", "", f"{summary.parameters:,}")
    if summary.trainable != summary.parameters:
        table.add_row("trainable", "", f"{summary.trainable:,}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("model")(handle_errors(model))
    app.command("info", hidden=True)(handle_errors(model))
