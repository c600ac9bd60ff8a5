"""Helpers for the report tests: real Optuna studies whose trials carry the attributes of
docs/store-schema.md, from real simulate measurements of tiny networks (no tests here)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import optuna
import pytest

from revprof.memory import measure_memory
from revprof.recipe import PAPER, Recipe
from revprof.spec import ArchSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

PATCH = (16, 16, 16)
BUDGET = 2_000_000
T0 = dt.datetime(2025, 3, 1, 12, 0, 0)


def tiny(depth: int = 1, execution: str = "reversible", widths: tuple[int, ...] = (8, 16)) -> ArchSpec:
    n = len(widths)
    return ArchSpec(widths=widths, encoder_depth=(depth,) * n, decoder_depth=(depth,) * n,
                    encoder_reversible=(True,) * n, decoder_reversible=(True,) * n,
                    groups=2).with_execution(execution)


_MEASURED: dict[Any, Any] = {}


def measured(spec: ArchSpec, patch: tuple[int, int, int] = PATCH, recipe: Recipe = PAPER):
    """The simulate measurement of a tiny network, made once per test process."""
    key = (spec, tuple(patch), recipe)
    if key not in _MEASURED:
        _MEASURED[key] = measure_memory(spec, patch, recipe, backend="simulate")
    return _MEASURED[key]


@pytest.fixture(scope="module", autouse=True)
def shared_simulations():
    """Autouse where imported: reports in that test module take their simulations from
    :func:`measured` (the same real simulate measurements, made once per process). Each report
    still owns its cache (``tests/test_report_prepare.py`` counts its simulations); sharing
    them between the tests of a module only keeps those tests fast."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("revprof.report.panels.memory.simulate", measured)
        yield


def trial_attrs(spec: ArchSpec, status: str = "ok", dice: tuple[float, float, float] | None = None,
                patch: tuple[int, int, int] = PATCH, seconds: float | None = 0.5) -> dict[str, Any]:
    report = measured(spec, patch)
    attrs: dict[str, Any] = {
        "spec": spec.to_dict(), "spec_words": spec.describe(), "patch": list(patch), "batch": 1,
        "precision": "fp32", "status": status, "predicted_peak_bytes": report.peak_bytes,
        "breakdown": report.breakdown, "activations_by_part": report.saved_after_forward,
        "peak_bytes": report.peak_bytes, "params": report.params, "device": "cpu",
        "environment": {"torch": "2.13.0", "python": "3.11.2"},
    }
    if dice is not None:
        wt, tc, et = dice
        attrs["dice"] = {"wt": wt, "tc": tc, "et": et, "mean": (wt + tc + et) / 3}
        attrs["seconds_per_step"] = seconds
    return attrs


# (spec, status, dice) of the quick Dice study; peaks of the tiny nets decide the front.
def dice_trials() -> list[tuple[ArchSpec, str, tuple[float, float, float] | None]]:
    return [
        (tiny(1, "reversible"), "ok", (0.80, 0.70, 0.60)),
        (tiny(1, "plain"), "ok", (0.81, 0.71, 0.61)),
        (tiny(2, "reversible"), "ok", (0.85, 0.75, 0.65)),
        (tiny(2, "plain"), "ok", (0.70, 0.60, 0.50)),
        (tiny(1, "reversible", (16, 32)), "infeasible", None),
        (tiny(1, "plain", (16, 32)), "oom", None),
        (tiny(3, "plain"), "diverged", None),
    ]


def make_study(storage: Any, name: str = "quick", memory_only: bool = False,
               trials: list | None = None, budget: int | None = BUDGET) -> optuna.Study:
    """A finished study as `revprof sweep` stores it (docs/store-schema.md)."""
    directions = ["minimize"] if memory_only else ["maximize", "minimize"]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    study.set_user_attr("revprof_version", "0.1.0")
    study.set_user_attr("objectives", ["peak_bytes"] if memory_only else ["dice", "peak_bytes"])
    study.set_user_attr("budget_bytes", budget)
    study.set_user_attr("memory_only", memory_only)
    study.set_user_attr("fixed", {"patch": list(PATCH), "batch": 1, "steps": 2, "precision": "fp32",
                                  "val_cases": 2, "data": "synthetic (4 cases)"})
    for i, (spec, status, dice) in enumerate(trials if trials is not None else dice_trials()):
        attrs = trial_attrs(spec, status, None if memory_only else dice)
        peak = attrs["predicted_peak_bytes"]
        state = optuna.trial.TrialState.FAIL if status == "failed" else optuna.trial.TrialState.COMPLETE
        values = None
        if state == optuna.trial.TrialState.COMPLETE:
            values = [peak] if memory_only else [attrs.get("dice", {}).get("mean", 0.0), peak]
        trial = optuna.trial.create_trial(state=state, values=values, user_attrs=attrs,
                                          system_attrs={"constraints": [peak - (budget or peak)]})
        trial.datetime_start = T0 + dt.timedelta(minutes=i)
        trial.datetime_complete = T0 + dt.timedelta(minutes=i, seconds=30)
        study.add_trial(trial)
    return study


def journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def two_study_store(folder: Path) -> Path:
    """A journal file holding a trained study ``quick`` and a memory-only study ``memory``."""
    path = folder / "studies.journal"
    make_study(journal(path), "quick")
    make_study(journal(path), "memory", memory_only=True)
    return path
