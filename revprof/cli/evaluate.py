"""``revprof evaluate``: score predicted segmentations against references (Dice, HD95)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from revprof.cli._common import choice, console, description_column, err_console, escape, handle_errors
from revprof.cli.render import empty_reference_note
from revprof.data.conventions import CONVENTIONS, REGIONS
from revprof.bounds import check_output_file, replace_file
from revprof.errors import RevprofError
from revprof.evaluation.evaluate import (
    HD95_UNITS, EvaluationResult, Hd95Unit, ScoringOptions, evaluate, scoring_options,
)
from revprof.evaluation.lesions import CHALLENGES, LESION_STYLES, ChallengeName, LesionStyle

_PROGRESS_MIN_CASES = 5


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""
    app.command("evaluate")(evaluate_command)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(result: EvaluationResult) -> Table:
    table = Table(title=f"BraTS evaluation ({result.convention} labels, {result.options.describe()})",
                  show_lines=False)
    # On a narrow terminal the case names fold onto more lines; the figures are never cut.
    table.add_column("case", overflow="fold", min_width=12)
    for region in REGIONS:
        table.add_column(f"Dice {region.upper()}", justify="right", no_wrap=True)
    for region in REGIONS:
        table.add_column(f"HD95 {region.upper()}", justify="right", no_wrap=True)
    for case in result.cases:
        hd = case.hd95 or {}
        table.add_row(
            case.case,
            *(_fmt(case.dice[r], 4) + ("*" if r in case.empty_reference else "") for r in REGIONS),
            *(_fmt(hd.get(r), 2) for r in REGIONS),
        )
    mean = result.mean()
    table.add_section()
    table.add_row(
        Text(f"mean ({len(result.cases)} cases)", style="bold"),
        *(_fmt(mean["dice"][r], 4) for r in REGIONS),
        *(_fmt(mean["hd95"][r], 2) for r in REGIONS),
    )
    empty = {r: sum(r in c.empty_reference for c in result.cases) for r in REGIONS}
    if any(empty.values()):
        table.add_row(
            Text("mean, non-empty references", style="bold"),
            *(_fmt(mean["dice_nonempty"][r], 4) for r in REGIONS), "", "", "",
        )
        table.caption = empty_reference_note(empty)
    return table



def _other_conventions(result: EvaluationResult) -> list[str]:
    """One line per label convention that predictions were read in other than the references'."""
    read: dict[str, list[str]] = {}
    for case in result.cases:
        if case.pred_convention is not None:
            read.setdefault(case.pred_convention, []).append(case.case)
    return [f"predictions read in {name} labels (their own; references {result.convention}): "
            f"{', '.join(cases)}" for name, cases in read.items()]


def _lesion_table(result: EvaluationResult) -> Table:
    """One row per case and region: lesion-wise Dice/HD95, lesion counts, matched-only Dice."""
    rules = result.options.lesions
    assert rules is not None
    where = f", {rules.challenge}" if rules.challenge else ""
    table = Table(title=f"lesion-wise ({rules.style} rules{where}, penalty {result.options.penalty:g})")
    for name, width in (("case", 12), ("region", 6)):
        table.add_column(name, overflow="fold", min_width=width)
    for name in ("LW Dice", "LW HD95", "TP", "FP", "FN", "matched Dice"):
        table.add_column(name, justify="right", no_wrap=True)
    for case in result.cases:
        for r in REGIONS:
            les = case.lesions[r]  # type: ignore[index]
            matched = les.matched_dice if les.tp else None
            table.add_row(case.case, r.upper(), _fmt(les.dice, 4),
                          _fmt(les.hd95 if case.hd95 is not None else None, 2),
                          str(les.tp), str(les.fp), str(les.fn), _fmt(matched, 4))
    mean = result.mean()
    table.add_section()
    for r in REGIONS:
        table.add_row(Text(f"mean ({len(result.cases)} cases)", style="bold"), r.upper(),
                      _fmt(mean["lesion_dice"][r], 4), _fmt(mean["lesion_hd95"][r], 2),
                      "", "", "", "")
    return table


def _check_csv_target(path: Path) -> None:
    """Fail before evaluating when ``--csv`` cannot be written there."""
    check_output_file(path, "--csv", example="scores.csv")
    if not path.parent.is_dir():
        raise RevprofError(f"--csv folder does not exist: {path.parent}")


def _write_csv(result: EvaluationResult, path: Path) -> None:
    """Write one row per case and region, atomically (temporary file, then ``os.replace``)."""
    replace_file(path, result.to_frame().to_csv(index=False), name=f"--csv {path}")


def _run(pred: Path, ref: Path, convention: Optional[str], options: ScoringOptions,
         pred_convention: Optional[str]) -> EvaluationResult:
    show = err_console.is_terminal
    if not show:
        return evaluate(pred, ref, convention=convention, options=options,
                        pred_convention=pred_convention)
    with Progress(
        description_column("progress.description"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = None

        def advance(done: int, total: int, case: str) -> None:
            nonlocal task
            if total < _PROGRESS_MIN_CASES:
                return
            if task is None:
                task = bar.add_task("evaluating", total=total)
            bar.update(task, completed=done, description=f"evaluating {case}")

        return evaluate(pred, ref, convention=convention, options=options, progress=advance,
                        pred_convention=pred_convention)


@handle_errors
def evaluate_command(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted segmentations (NIfTI)."),
    ref: Path = typer.Option(
        ..., "--ref", help="Folder of reference segmentations: BraTS case folders or flat *seg.nii.gz."
    ),
    convention: Optional[str] = typer.Option(
        None,
        "--convention",
        help=f"Label convention of the references ({', '.join(CONVENTIONS)}); detected from "
        "their labels when left out. Each prediction is read in it when it defines the "
        "prediction's labels, else in the convention its own labels tell (ET = 3 of BraTS 2023 "
        "against ET = 4 of 2017-2021), named in the output.",
    ),
    pred_convention: Optional[str] = typer.Option(
        None,
        "--pred-convention",
        help="Read every prediction in this label convention instead of telling it from the "
        "prediction's labels (for labels that do not tell: 1, 2, 4 are ET = 4 of 2017-2021 or "
        "a resection cavity of 2024).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    csv: Optional[Path] = typer.Option(
        None, "--csv", help="Also write one row per case and region (case, region, dice, hd95)."
    ),
    no_hd95: bool = typer.Option(False, "--no-hd95", help="Skip HD95 (faster)."),
    hd95_units: Optional[Hd95Unit] = typer.Option(
        None, "--hd95-units", parser=choice("--hd95-units", HD95_UNITS),
        help=f"HD95 in {' or '.join(HD95_UNITS)}. Default mm: the distance in the scan, from the "
        "header's spacing, comparable between anisotropic scans (the official tool's global "
        "HD95 is in voxels: use --official to reproduce it).",
    ),
    empty_penalty: Optional[float] = typer.Option(
        None, "--empty-penalty",
        help="HD95 of a region or lesion present on one side only (default 373.13, the "
        "official tool's; 374 with --lesion-rules brats2023).",
    ),
    lesion_rules: LesionStyle = typer.Option(
        "official", "--lesion-rules", parser=choice("lesion rules", LESION_STYLES),
        help=f"Lesion-wise rules: {', '.join(LESION_STYLES)} (official: the current official "
        "tool, 26-connected lesions matched one-to-one by maximum total Dice; brats2023: the "
        "2023 reference script, reference dilation and a minimum lesion volume per challenge).",
    ),
    challenge: Optional[ChallengeName] = typer.Option(
        None, "--challenge", parser=choice("challenge", CHALLENGES, normalize=str.upper),
        help=f"BraTS challenge ({', '.join(CHALLENGES)}): the 2023 rules' dilation and minimum "
        "lesion volume.",
    ),
    no_lesions: bool = typer.Option(False, "--no-lesions", help="Skip lesion-wise scores (faster)."),
    official: bool = typer.Option(
        False, "--official",
        help="Reproduce the official tool's numbers for leaderboard comparison: global HD95 in "
        "voxels, per-lesion HD95 with its (reversed) spacing convention.",
    ),
) -> None:
    """Score predictions against references per case and region: Dice, HD95 and lesion-wise
    Dice/HD95 with TP/FP/FN lesions (BraTS rules)."""
    options = scoring_options(hd95=not no_hd95, hd95_units=hd95_units, lesion_wise=not no_lesions,
                              lesion_style=lesion_rules, challenge=challenge,
                              empty_penalty=empty_penalty, official=official)
    if csv is not None:
        _check_csv_target(csv)
    result = _run(pred, ref, convention, options, pred_convention)
    if csv is not None:
        _write_csv(result, csv)
    for line in result.problems:
        err_console.print(f"[yellow]warning:[/] {escape(str(line))}", highlight=False,
                          soft_wrap=True, markup=True)
    if as_json:
        typer.echo(json.dumps({"kind": "evaluation", **result.to_json()}))
        return
    console.print(_table(result))
    for line in _other_conventions(result):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    if result.lesions_computed:
        console.print(_lesion_table(result))
    if result.unpaired:
        console.print(f"[yellow]{len(result.unpaired)} unpaired file(s):[/]", highlight=False,
                      markup=True)
        for name in result.unpaired:
            console.print(f"  {name}", highlight=False, soft_wrap=True)
    if csv is not None:
        console.print(f"wrote {csv}", highlight=False, soft_wrap=True)
