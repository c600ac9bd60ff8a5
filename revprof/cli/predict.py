"""``revprof predict``: segment BraTS cases with a network saved by ``measure --save-model``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeRemainingColumn

from revprof.cli._common import console, description_column, err_console, handle_errors


def predict(
    model: Annotated[Path, typer.Option("--model", help="A checkpoint written by revprof measure "
                                        "--steps N --save-model FILE.", show_default=False)],
    data: Annotated[Path, typer.Option("--data", help="A BraTS folder (cases with or without "
                                       "segmentations).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Where the label maps go (<case>.nii.gz).",
                                      show_default=False)],
    patch: Annotated[str | None, typer.Option(
        "--patch", help="Sliding-window size (default: the checkpoint's training patch).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    convention: Annotated[str | None, typer.Option(
        "--convention", help="Force the label convention of the cases (default: detected).")] = None,
    largest_component: Annotated[bool, typer.Option(
        "--largest-component", help="Keep only the largest connected whole tumour (and the core "
        "and enhancing tumour inside it): removes scattered false positives, and a second lesion "
        "of a multifocal tumour.")] = False,
) -> None:
    """Segment cases with a saved network: sliding-window inference, label maps in each case's
    original geometry and label convention, ready for `revprof evaluate`."""
    from revprof.train.predict import predict_folder

    with Progress(description_column(), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err_console, disable=not err_console.is_terminal,
                  transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def window(case: str, done: int, total: int) -> None:
            if case not in tasks:
                tasks[case] = bar.add_task(f"segmenting {case}", total=total)
            bar.update(tasks[case], completed=done)

        written = predict_folder(model, data, out, patch=patch, device=device,
                                 convention=convention, on_window=window,
                                 largest_component=largest_component)
    for item in written:
        kept = ""
        if item.kept is not None and item.kept.components > 1:
            kept = (f"; largest of {item.kept.components} tumour components kept, "
                    f"{item.kept.removed_voxels:,} voxels removed")
        console.print(f"{item.case}: {item.path} ({'×'.join(map(str, item.shape))}){kept}",
                      highlight=False, soft_wrap=True)
    console.print(f"segmented {len(written)} case(s) into {out}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("predict")(handle_errors(predict))
