"""revprof against real GPU measurements of training runs (issue 23), beside xMem, DNNMem and
SchedTune on the same rows.

Usage (from the repository root)::

    python benchmarks/gpu_truth.py --rows ../shared/gpu-truth/xmem-dev.tsv --json OUT.json

Each row's step is reproduced on the simulate backend (fake tensors: nothing is allocated);
``revprof.bench.gpu_truth`` predicts its reserved memory and whether it fits the card, adds the
card's allowance and scores every estimator on the same rows. A bad row is one line on stderr and
is skipped. Ctrl-C stops (the row in progress is dropped), and what is done is scored and written.
``--fit`` also refits the allowance on these rows and prints it (the compared figure keeps
``ALLOWANCE_BYTES`` unless ``--use-fit``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

from revprof.bench.gpu_truth import (  # noqa: E402
    ALLOWANCE_BYTES, RowPrediction, fit_allowances, hold_out_markdown, miss_table, predict_row,
    read_truth_rows, score_rows, summary_markdown, truth_record,
)
from revprof.bounds import replace_file  # noqa: E402
from revprof.errors import RevprofError  # noqa: E402
from revprof.units import format_bytes  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, required=True, help="ground-truth TSV (xmem-dev.tsv format)")
    parser.add_argument("--json", type=Path, default=None, help="write the record here")
    parser.add_argument("--lines", default=None, help="only these file lines, e.g. 2,5,17")
    parser.add_argument("--fit", action="store_true", help="refit the allowance on these rows and print it")
    parser.add_argument("--use-fit", action="store_true", help="score with the refitted allowance")
    args = parser.parse_args()
    err = Console(stderr=True)
    try:
        truth = read_truth_rows(args.rows)
    except RevprofError as error:
        err.print(f"error: {error}", highlight=False, soft_wrap=True)
        return 1
    for error in truth.errors:
        err.print(f"skipped: {error}", highlight=False, soft_wrap=True)
    rows = list(truth.rows)
    if args.lines:
        wanted = {int(n) for n in args.lines.split(",")}
        rows = [r for r in rows if r.line in wanted]
    machine = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    predictions: dict[int, RowPrediction | str] = {}
    complete = True
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("predicting", total=len(rows))
        try:
            for row in rows:
                progress.update(task, description=f"line {row.line}: {row.model_call.builder} "
                                                  f"{row.optimizer} batch {row.batch}")
                try:
                    predictions[row.line] = predict_row(row)
                except RevprofError as error:
                    predictions[row.line] = str(error)
                    err.print(f"line {row.line}: {error}", highlight=False, soft_wrap=True)
                progress.advance(task)
        except KeyboardInterrupt:
            complete = False
            err.print(f"stopped: {len(predictions)} of {len(rows)} rows done; scoring those")
    machine.update(load_after=os.getloadavg(), wall_seconds=round(time.perf_counter() - started, 1))
    scored = score_rows(rows, predictions)
    fitted = fit_allowances(scored) if (args.fit or args.use_fit) and scored else None
    allowance = fitted if args.use_fit and fitted else ALLOWANCE_BYTES
    if allowance is not ALLOWANCE_BYTES:
        scored = score_rows(rows, predictions, allowance)
    record = truth_record(scored, allowance, complete=complete, source=str(args.rows),
                          machine=machine, fitted=fitted)
    if fitted is not None:  # Markdown and plain lines on stdout, unwrapped
        print("allowance fitted on these rows: " + ", ".join(
            f"{card} {format_bytes(value)} ({value:,} B)" for card, value in fitted.items()))
    if "summary" in record:
        print(summary_markdown(record["summary"]))
        if record["hold_out"]:
            print("\n" + hold_out_markdown(record["hold_out"]))
        print("\n" + miss_table(scored))
    seconds = record["seconds_per_estimate"]
    if seconds["median"] is not None:
        print(f"\nseconds per estimate: median {seconds['median']:.1f}, max {seconds['max']:.1f}; "
              f"load {machine['load_before'][0]:.1f} -> {machine['load_after'][0]:.1f} on "
              f"{machine['cpus']} cores")
    if args.json is not None:
        replace_file(args.json, json.dumps(record, indent=1) + "\n", name=str(args.json))
        print(f"written to {args.json}")
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main())
