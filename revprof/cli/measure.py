"""``revprof measure``: peak training memory of one network, measured or predicted."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from revprof.cli._common import console, handle_errors
from revprof.cli.spec_options import (
    Arch, Checkpoint, DecoderDepth, Depth, EncoderDepth, Groups, Growth, Levels, MaxWidth,
    Reversible, SpecOptions, Width, Widths,
)
from revprof.memory import measure_memory
from revprof.memory.render import report_tables

Patch = Annotated[str, typer.Option("--patch", help="Patch size: 128 or D,H,W such as 160,192,160.")]
Batch = Annotated[int, typer.Option("--batch", min=1, help="Batch size.")]
Precision = Annotated[str, typer.Option("--precision", help="fp32, bf16 or fp16 (autocast).")]
Backend = Annotated[str, typer.Option("--backend", help="auto (cuda if a GPU is visible, else "
                                      "simulate), cuda, cpu or simulate.")]


def measure(
    arch: Arch = "revunet", levels: Levels = None, width: Width = None, widths: Widths = None,
    growth: Growth = 2.0, max_width: MaxWidth = None, depth: Depth = None,
    encoder_depth: EncoderDepth = None, decoder_depth: DecoderDepth = None,
    reversible: Reversible = None, checkpoint: Checkpoint = False, groups: Groups = None,
    patch: Patch = "128", batch: Batch = 1, precision: Precision = "fp32", backend: Backend = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    timeline: Annotated[bool, typer.Option("--timeline/--no-timeline",
                                           help="Include the op-by-op timeline in --json.")] = False,
) -> None:
    """Peak memory of a training step (forward, soft Dice, backward, Adam) with its breakdown."""
    spec = SpecOptions(arch, levels, width, widths, growth, max_width, depth, encoder_depth,
                       decoder_depth, reversible, checkpoint, groups).build()
    report = measure_memory(spec, patch, batch=batch, precision=precision, backend=backend)
    if as_json:
        print(json.dumps(report.to_dict(timeline=timeline)))
    else:
        console.print(report_tables(report))


def register(app: typer.Typer) -> None:
    app.command("measure")(handle_errors(measure))
