"""``revprof export``: the networks of a sweep as spec files for ``measure/model/plan --spec``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from revprof.bounds import check_output_folder
from revprof.cli._common import STORAGE_ENV, console, handle_errors, shown_storage, storage_help


def export(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name in the store (for a "
                                         "memory-only sweep: NAME-memory).", show_default=False)],
    front: Annotated[bool, typer.Option("--front", help="Export every trial on the Pareto "
                                        "front.")] = False,
    trial: Annotated[list[int] | None, typer.Option("--trial", min=0, help="Export trial N "
                                                    "(repeat for more).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder the spec files are written to (one "
                                      "STUDY-trialNNNN.json per trial).")] = Path("specs"),
    storage: Annotated[str | None, typer.Option(
        "--storage", envvar=STORAGE_ENV, show_envvar=False,
        help=storage_help("The store: a journal file path (default .revprof/studies.journal), "
                          "sqlite:///FILE.db or postgresql://USER:PASSWORD@HOST:PORT/DB."))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object listing the "
                                          "files written.")] = False,
) -> None:
    """Write the networks of a sweep as spec files for measure, model and plan --spec.

    The Pareto front (--front) or chosen trials (--trial N), one file each. Each file holds the network, its patch, batch and precision, the sweep's training
    settings and, in a header, the trial number and its measured and predicted figures; give it to
    revprof measure, model or plan with --spec FILE."""
    from revprof.sweep.export import export_trials, select_trials
    from revprof.sweep.storage import default_storage, load_study
    from revprof.sweep.study import quiet_optuna

    check_output_folder(out, "--out", example="specs/")
    quiet_optuna()
    store = storage if storage is not None else default_storage()
    loaded = load_study(study, store)
    trials = select_trials(loaded, front, trial or [])
    written = export_trials(loaded, trials, out, shown_storage(store))
    if as_json:
        print(json.dumps({"kind": "export", "study": study, "store": shown_storage(store),
                          "files": [{"trial": e.number, "path": str(e.path),
                                     "pareto_front": e.on_front} for e in written]}))
        return
    for item in written:
        mark = " (Pareto front)" if item.on_front else ""
        console.print(f"trial {item.number}{mark}: {item.path}", highlight=False, soft_wrap=True)
    console.print(f"{len(written)} spec file{'s' if len(written) != 1 else ''} in {out}; "
                  f"next: revprof measure --spec {written[0].path}", highlight=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export")(handle_errors(export))
