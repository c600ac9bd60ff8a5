"""Build the memory-only study of the paper's configurations, its report and a screenshot.

Brügger et al. (MICCAI 2019): the partially reversible U-Net with widths 60,120,240,360,480 and
1-4 blocks per level, run reversibly, plainly and with activation checkpointing, against the
No New-Net baseline, at patches 128³ and 160×192×160, batch 1, fp32, with an 11 GiB budget
(the paper's GPU). Every peak comes from the simulate backend (exact, no GPU needed).

    .venv/bin/python benchmarks/make_paper_report.py            # about 2 minutes on 2 CPU cores
    .venv/bin/python benchmarks/make_paper_report.py --no-png   # skip the screenshot

Writes the study ``paper-memory`` into ``.revprof/studies.journal`` (replacing an older one),
``reports/paper-memory.html`` and ``docs/report-paper-memory.png`` (headless Chromium).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

import revprof
from revprof.report import write_report
from revprof.report.inputs import DEFAULT_STORE
from revprof.report.prepare import simulate
from revprof.spec import ArchSpec

STUDY = "paper-memory"
BUDGET = 11 * 2**30
PATCHES = ((128, 128, 128), (160, 192, 160))
DEPTHS = (1, 2, 3, 4)
EXECUTIONS = ("reversible", "plain", "checkpoint")


def configurations() -> list[tuple[ArchSpec, tuple[int, int, int]]]:
    """The paper's network first (the report's reference), then every other configuration."""
    out = []
    for patch in PATCHES:
        for depth in DEPTHS:
            for execution in EXECUTIONS:
                out.append((ArchSpec.paper_revunet(depth).with_execution(execution), patch))
        out.append((ArchSpec.paper_nonewnet(), patch))
    return out


def build_study(storage: optuna.storages.BaseStorage) -> None:
    if STUDY in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=STUDY, storage=storage)
    study = optuna.create_study(study_name=STUDY, storage=storage, directions=["minimize"])
    fixed = {"batch": 1, "steps": 2, "precision": "fp32", "backend": "simulate"}
    study.set_user_attr("revprof_version", getattr(revprof, "__version__", "0.1.0"))
    study.set_user_attr("study_file", "benchmarks/make_paper_report.py")
    study.set_user_attr("study", {
        "name": STUDY, "data": None, "fixed": fixed, "objectives": ["peak_bytes"],
        "space": {"arch": ["revunet", "nonewnet"], "depth": list(DEPTHS),
                  "execution": list(EXECUTIONS), "patch": [list(p) for p in PATCHES]},
        "sampler": "grid (every configuration, by script)", "budget": "11GiB"})
    study.set_user_attr("objectives", ["peak_bytes"])
    study.set_user_attr("budget_bytes", BUDGET)
    study.set_user_attr("memory_only", True)
    study.set_user_attr("fixed", fixed)
    for spec, patch in configurations():
        started = dt.datetime.now()
        report = simulate(spec, patch, 1, "fp32")
        status = "ok" if report.peak_bytes <= BUDGET else "infeasible"
        print(f"{spec.describe():48s} {'x'.join(map(str, patch)):12s} "
              f"{report.peak_bytes / 2**30:7.2f} GiB  {status}", flush=True)
        attrs = {
            "spec": spec.to_dict(), "spec_words": spec.describe(), "patch": list(patch), "batch": 1,
            "precision": "fp32", "status": status, "predicted_peak_bytes": report.peak_bytes,
            "breakdown": report.breakdown, "activations_by_part": report.saved_after_forward,
            "peak_bytes": report.peak_bytes, "params": report.params, "device": report.device,
            "environment": report.environment,
        }
        trial = optuna.trial.create_trial(values=[report.peak_bytes], user_attrs=attrs,
                                          system_attrs={"constraints": [report.peak_bytes - BUDGET]})
        trial.datetime_start, trial.datetime_complete = started, dt.datetime.now()
        study.add_trial(trial)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(page: Path, png: Path, size: tuple[int, int]) -> None:
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no Chromium for the screenshot (apt-get install -y chromium); rerun with --no-png")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                        "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000",
                        f"--window-size={size[0]},{size[1]}", f"--screenshot={png.resolve()}",
                        page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120, env=dict(os.environ, HOME=profile))
    print(png)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", type=Path, default=DEFAULT_STORE, help="journal file")
    parser.add_argument("--out", type=Path, default=Path("reports") / f"{STUDY}.html")
    parser.add_argument("--png", type=Path, default=Path("docs") / "report-paper-memory.png")
    parser.add_argument("--no-png", action="store_true", help="skip the screenshot")
    parser.add_argument("--height", type=int, default=4800, help="screenshot height in pixels")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.storage.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(args.storage)))
    started = time.perf_counter()
    build_study(storage)
    print(f"study {STUDY!r} in {args.storage}: {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    print(write_report(STUDY, str(args.storage), args.out))
    print(f"report: {time.perf_counter() - started:.0f} s")
    if not args.no_png:
        screenshot(args.out, args.png, (1400, args.height))


if __name__ == "__main__":
    main()
