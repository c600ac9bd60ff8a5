"""``revprof report``: an interactive HTML report of a study or a results file, offline."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from revprof.bounds import check_name, check_output_file
from revprof.cli._common import (
    STORAGE_ENV, console, handle_errors, parameter, set_quiet, storage_help,
)
from revprof.errors import RevprofError
from revprof.units import parse_bytes


def report(
    study: Annotated[str | None, typer.Option("--study", help="Study name in the store.")] = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", envvar=STORAGE_ENV, show_envvar=False, help=storage_help(
            "sqlite:///FILE, postgresql://... or a .journal file (default: "
            ".revprof/studies.journal)."))] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", help="A results table (CSV, Parquet or JSON lines) instead of a study.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="HTML file to write (default: reports/NAME.html).")] = None,
    date: Annotated[str | None, typer.Option(
        "--date", help="Date for the header (default: latest trial completion in the store).")] = None,
    budget: Annotated[str | None, typer.Option(
        "--budget", help="Memory budget such as 11GiB (default: the study's).",
        callback=parameter("--budget", parse_bytes), metavar="SIZE")] = None,
    reference: Annotated[int | None, typer.Option(
        "--reference", help="Trial number (results: row) of the network the memory figures are "
                            "about (default: best feasible trial, or the first).")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the report in the default browser.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object naming the file "
                                          "written.")] = False,
) -> None:
    """Write one self-contained HTML report: Pareto front, memory vs depth and patch size,
    memory breakdown, a training step's memory timeline, Dice per region and all trials."""
    from revprof.report import write_report, write_report_from_results

    if as_json:
        set_quiet()

    if (study is None) == (results is None):
        raise RevprofError("give either --study NAME (with --storage URL if not the default store) "
                           "or --results FILE")
    if results is not None and storage is not None:
        raise RevprofError("--storage goes with --study, not with --results")
    if study is not None:
        check_name("--study", study)
    name = study if study is not None else Path(results).stem  # type: ignore[arg-type]
    target = out if out is not None else Path("reports") / f"{name}.html"
    if target.suffix.lower() not in (".html", ".htm"):
        raise RevprofError(f"--out must end in .html; got {target}")
    check_output_file(target, "--out", example="reports/study.html")
    with console.status("building the report (simulating reference networks)..."):
        if study is not None:
            path = write_report(study, storage, target, date=date, budget_bytes=budget,  # type: ignore[arg-type]
                                reference=reference)
        else:
            path = write_report_from_results(results, target, date=date,  # type: ignore[arg-type]
                                             budget_bytes=budget,  # type: ignore[arg-type]
                                             reference=reference)
    if as_json:
        print(json.dumps({"kind": "report", "path": str(path), "study": study,
                          "results": str(results) if results is not None else None}))
    else:
        print(path)
    if open_:
        open_in_browser(path)


def open_in_browser(path: Path) -> bool:
    """Open ``path`` in the default browser; where there is none, say so and go on."""
    try:
        opened = webbrowser.open(Path(path).resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        console.print("no browser to open it in; open the file above yourself", highlight=False)
    return opened


def register(app: typer.Typer) -> None:
    app.command("report")(handle_errors(report))
