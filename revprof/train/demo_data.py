"""Synthetic BraTS-format cases for the demo and for runs without ``--data``, made once."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from revprof.processes import pid_alive

DEMO_ROOT = Path(".revprof") / "demo-data"


def demo_dataset(cases: int, shape: tuple[int, int, int], seed: int = 0, root: Path | None = None) -> Path:
    """The folder of ``cases`` synthetic BraTS 2021-layout cases of ``shape``, generated on first use.

    Generation writes to a temporary folder that is renamed into place, so an interrupted run
    never leaves a half-written data set behind.
    """
    from revprof.data import synthesize

    base = root or DEMO_ROOT
    target = base / f"brats2021-{cases}x{'x'.join(map(str, shape))}-seed{seed}"
    if target.is_dir():
        return target
    base.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(base)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=base))
    try:
        synthesize(staging, cases, shape=shape, convention="brats2021", seed=seed)
        try:
            os.replace(staging, target)
        except OSError:  # another process won the race: use its copy
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _remove_abandoned_staging(base: Path) -> None:
    """Remove the staging folders of runs that were killed (SIGKILL leaves no chance to clean
    up): a ``.staging-PID-*`` folder whose process no longer runs."""
    for folder in base.glob(".staging-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


