"""``revprof data synth`` and ``revprof data check``: thin wrappers over :mod:`revprof.data`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from revprof.bounds import MAX_SYNTHETIC_CASES, check_int, check_output_folder
from revprof.cli._common import console, err_console, handle_errors, parameter, set_quiet
from revprof.data.check import CheckReport, check_dataset
from revprof.data.conventions import get_convention
from revprof.data.synth import SYNTH_CONVENTIONS, parse_shape, synthesize
from revprof.errors import look_up

data_app = typer.Typer(
    name="data",
    help="Synthesise BraTS-format cases and check dataset folders.",
    no_args_is_help=True,
)


def _synth_convention(value: str) -> str:
    return look_up("convention", value, SYNTH_CONVENTIONS)


def _convention(value: str) -> str:
    return get_convention(value).name


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=False, disable=console.quiet,
    )


@data_app.command("synth")
@handle_errors
def synth_command(
    out: Path = typer.Argument(..., help="Output folder (created)."),
    cases: int = typer.Option(..., "--cases", min=1, help="Number of cases."),
    shape: str = typer.Option(
        "240,240,155", "--shape", callback=parameter("--shape", parse_shape),
        help="Volume shape D,H,W.",
    ),
    convention: str = typer.Option(
        "brats2021", "--convention", callback=parameter("--convention", _synth_convention),
        help="Release layout: " + ", ".join(SYNTH_CONVENTIONS) + ".",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (case i uses [seed, i])."),
    force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty "
                               "(cases with the same id are replaced)."),
) -> None:
    """Write synthetic BraTS-format cases in a public release layout."""
    check_int("--cases", cases, 1, MAX_SYNTHETIC_CASES)
    check_output_folder(out, "output folder", example="data/synthetic")
    with _progress() as bar:
        task = bar.add_task(f"synthesising {convention}", total=cases)
        written = synthesize(
            out, cases, shape=shape, convention=convention, seed=seed,  # type: ignore[arg-type]
            progress=lambda i, path: bar.advance(task), force=force,
        )
    console.print(f"wrote {len(written)} {convention} cases of shape "
                  f"{'x'.join(str(s) for s in shape)} to {out}", highlight=False)


@data_app.command("check")
@handle_errors
def check_command(
    path: Path = typer.Argument(..., help="Dataset, cohort or case folder."),
    convention: str | None = typer.Option(
        None, "--convention", callback=parameter("--convention", _convention),
        help="Force a label convention: brats2021, brats2023, brats2024 or msd.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the "
                                 "table (exit status 1 still means not usable)."),
) -> None:
    """Read every case under PATH and report what was found and what is wrong."""
    if as_json:
        set_quiet()
    with _progress() as bar:
        task = bar.add_task("checking", total=None)

        def step(i: int, total: int, case: object) -> None:
            bar.update(task, total=total, completed=i)

        report = check_dataset(path, convention, progress=step)
        bar.update(task, completed=report.found)
    if as_json:
        print(json.dumps(_report_dict(report)))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _report_dict(report: CheckReport) -> dict[str, object]:
    """``data check --json``: the same figures as the table, and every problem."""
    with_seg = sum(1 for c in report.cases if not c.inference_only)
    return {
        "kind": "data-check", "root": str(report.root), "usable": report.ok,
        "found": report.found, "readable": len(report.cases),
        "per_convention": report.per_convention(), "with_segmentation": with_seg,
        "inference_only": len(report.cases) - with_seg,
        "shapes": [{"shape": list(s), "cases": n} for s, n in sorted(report.shapes().items())],
        "spacings": [{"spacing_mm": list(s), "cases": n}
                     for s, n in sorted(report.spacings().items())],
        "orientations": report.orientations(),
        "label_values": report.label_values(),
        "problems": [{"severity": p.severity, "message": str(p)} for p in report.problems],
        "cases": [{"case": c.case_id, "convention": c.convention, "orientation": c.orientation,
                   "shape": list(c.shape), "spacing_mm": list(c.spacing),
                   "labels": list(c.labels) if c.labels is not None else None}
                  for c in report.cases],
    }


def _counts(mapping: dict, fmt) -> str:
    return ", ".join(f"{fmt(k)} ({n})" for k, n in sorted(mapping.items()))


def _case_table(report: CheckReport) -> Table:
    """One row per readable case: its convention, orientation, shape, spacing and labels."""
    table = Table(title="cases", show_header=True)
    for name in ("case", "convention", "orientation", "shape", "spacing (mm)", "labels"):
        table.add_column(name, overflow="fold")
    for c in report.cases:
        table.add_row(escape(c.case_id), c.convention, c.orientation, "x".join(map(str, c.shape)),
                      "x".join(f"{v:g}" for v in c.spacing),
                      "-" if c.labels is None else ", ".join(map(str, c.labels)))
    return table


def _print_report(report: CheckReport) -> None:
    if report.cases:
        console.print(_case_table(report))
    table = Table(title=f"dataset {report.root}", show_header=True)
    table.add_column("what")
    table.add_column("found")
    table.add_row("cases found", str(report.found))
    table.add_row("cases readable", str(len(report.cases)))
    table.add_row("per convention", _counts(report.per_convention(), str) or "-")
    with_seg = sum(1 for c in report.cases if not c.inference_only)
    table.add_row("with segmentation", str(with_seg))
    table.add_row("inference only", str(len(report.cases) - with_seg))
    table.add_row("shapes", _counts(report.shapes(), lambda s: "x".join(map(str, s))) or "-")
    table.add_row("spacings (mm)", _counts(report.spacings(), lambda s: "x".join(f"{v:g}" for v in s)) or "-")
    table.add_row("orientations", _counts(report.orientations(), str) or "-")
    table.add_row("label values", ", ".join(map(str, report.label_values())) or "-")
    table.add_row("errors / warnings", f"{len(report.errors)} / {len(report.problems) - len(report.errors)}")
    console.print(table)
    for problem in report.problems:
        style = "red" if problem.severity == "error" else "yellow"
        console.print(f"[{style}]{escape(str(problem))}[/]", highlight=False, soft_wrap=True, markup=True)
    verdict = "[green]usable[/]" if report.ok else "[red]not usable[/]"
    console.print(f"dataset is {verdict}", highlight=False, markup=True)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")
