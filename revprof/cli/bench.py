"""``revprof bench``: side-by-side memory and step-time benchmarks against the peers."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from revprof.bounds import check_output_file, check_output_folder, replace_file
from revprof.cli._common import console, handle_errors, set_quiet
from revprof.cli.recipe_options import RecipeOptions, with_recipe_options
from revprof.errors import RevprofError

Quick = Annotated[bool, typer.Option("--quick", help="Tiny networks and patches: the same tables "
                                     "in seconds (for tests and smoke runs).")]
DEFAULT_OUT = Path("bench-results")
"""Where ``revprof bench`` writes by default: a folder of its own, never the tracked
``benchmarks/results`` (``make bench`` writes there, with ``--update-docs``)."""

Out = Annotated[Path, typer.Option("--out", help="Folder for bench.json and bench.md "
                                   "(bench-quick.* with --quick, bench-cuda-*.json with --cuda).")]
UpdateDocs = Annotated[bool, typer.Option(
    "--update-docs", help="Also rewrite the bench section of the docs (--docs, default "
    "docs/benchmarks.md).")]
Cuda = Annotated[bool, typer.Option("--cuda", help="Also measure on the CUDA GPU (allocator peak, "
                                    "CUDA events); noted as not run when none is visible.")]
Docs = Annotated[Path | None, typer.Option("--docs", help="Markdown file whose bench section "
                                           "--update-docs rewrites (default docs/benchmarks.md).")]


def bench(quick: Quick = False, out: Out = DEFAULT_OUT, cuda: Cuda = False,
          docs: Docs = None, update_docs_: UpdateDocs = False,
          as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (the "
                                                "record written to bench.json and the files "
                                                "written) instead of the Markdown tables.")] = False,
          recipe_options: RecipeOptions = RecipeOptions(),
          ) -> None:
    """Peak memory (simulate, exact) and CPU step-time ratios of revprof's reversible execution
    next to plain autograd, checkpointing, RevTorch and the No New-Net baseline; checks the targets."""
    from revprof.bench.peers import revtorch_available
    from revprof.bench.report import markdown, update_docs, write_json
    from revprof.bench.run import BenchSettings, run_bench

    if docs is not None and not update_docs_:
        raise RevprofError(f"--docs {docs} needs --update-docs (the docs are rewritten only when "
                           f"asked)")
    check_output_folder(out, "--out", example="bench-results/")
    if update_docs_:
        check_output_file(docs or Path("docs/benchmarks.md"), "--docs", example="docs/benchmarks.md")
    if as_json:  # stdout carries the JSON object only
        set_quiet()
    settings = BenchSettings.quick_settings() if quick else BenchSettings.full()
    settings = dataclasses.replace(settings, recipe=recipe_options.resolve())
    command = "revprof bench" + (" --quick" if quick else "") + (" --cuda" if cuda else "")
    if recipe_options.given():
        command += f" (recipe {settings.recipe.describe()})"
    if out != DEFAULT_OUT:
        command += f" --out {shlex.quote(str(out))}"
    if not revtorch_available():
        console.print("[yellow]RevTorch is not installed (pip install 'revprof[bench]'): its "
                      "columns are left out.[/]", markup=True)
    total = len(settings.memory.jobs()) + (settings.warmup + settings.repetitions) * len(settings.memory.peers)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("revprof bench", total=total)

        def step(label: str) -> None:
            progress.update(task, description=label, advance=1)

        record = run_bench(settings, command, cuda=cuda, progress=step)
    stem = "bench-quick" if quick else "bench"
    json_path = write_json(record, out / f"{stem}.json")
    section = markdown(record)
    md_path = replace_file(out / f"{stem}.md", section, name=str(out / f"{stem}.md"))
    written = [json_path, md_path]
    if record.get("cuda") and record["cuda"].get("run"):
        device = "".join(c if c.isalnum() else "-" for c in record["cuda"]["device"]).strip("-")
        written.append(write_json(record, out / f"{stem}-cuda-{device}.json"))
    if update_docs_:
        written.append(update_docs(docs or Path("docs/benchmarks.md"), section))
    if as_json:
        print(json.dumps({"kind": "bench", "files": [str(p) for p in written], "record": record}))
        return
    typer.echo(section)
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)


def register(app: typer.Typer) -> None:
    app.command("bench")(handle_errors(with_recipe_options(bench)))
