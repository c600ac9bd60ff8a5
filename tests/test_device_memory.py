"""A card's capacity (issue 24): ``--device-memory`` on ``measure``, ``plan`` and study files.

With a card, the allocator replay follows torch's free-and-retry path on what the card leaves
the caching allocator (its total less the CUDA context and the workspace allowance), a step that
does not fit is an ``oom`` result naming the request, and the planner never proposes what the
replay says would run out of memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from revprof import RevprofError
from revprof.cli.app import app
from revprof.memory import measure_memory
from revprof.memory.allocator import parse_alloc_conf, replay
from revprof.memory.cards import CARDS, parse_device_memory
from revprof.memory.device import allocator_capacity, device_class_of
from revprof.memory.planner import Criterion, largest_patch
from revprof.spec import spec_from_options
from revprof.sweep.storage import open_storage

runner = CliRunner()
SMALL = spec_from_options(levels=2, width=8, groups=2)  # 46 MiB allocated, 64 MiB reserved at 64³


def test_the_allocator_gets_the_card_less_the_context_and_workspace() -> None:
    card = CARDS["rtx4060"]
    usable = allocator_capacity(card)
    assert device_class_of(card) == "consumer"
    assert usable.usable == card.total_bytes - 384 * 2**20 - 256 * 2**20
    assert allocator_capacity(parse_device_memory("1GiB")).usable == 256 * 2**20  # default class
    with pytest.raises(RevprofError, match="is not more than the CUDA context"):
        allocator_capacity(parse_device_memory("512MiB"))


def test_a_step_that_does_not_fit_the_card_is_an_oom_result_naming_the_request() -> None:
    card = parse_device_memory("1GiB")  # 256 MiB for the allocator
    paper = spec_from_options()
    fits = measure_memory(SMALL, 64, backend="simulate", device_memory=allocator_capacity(card))
    assert fits.status == "ok" and fits.device_memory["total_bytes"] == card.total_bytes
    report = measure_memory(paper, 64, backend="simulate", device_memory=allocator_capacity(card))
    assert report.status == "oom" and report.oom["predicted"] is True
    assert report.oom["message"].startswith("predicted out of memory: a request of ")
    assert report.oom["usable_bytes"] == 256 * 2**20
    # the replay stopped at that request: what it had reserved plus the request is over the card
    assert report.oom["reserved_bytes"] + report.oom["requested_bytes"] > 256 * 2**20
    free = measure_memory(paper, 64, backend="simulate")
    assert free.status == "ok" and free.predicted_reserved_bytes > 256 * 2**20
    assert report.peak_bytes == free.peak_bytes  # the step's own figures are the same


def test_measure_prints_an_oom_result_with_exit_0() -> None:
    result = runner.invoke(app, ["measure", "--patch", "64", "--backend", "simulate",
                                 "--device-memory", "1GiB", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "oom" and data["oom"]["predicted"] is True
    text = runner.invoke(app, ["measure", "--patch", "64", "--backend", "simulate",
                               "--device-memory", "1GiB"])
    assert text.exit_code == 0 and "out of memory (predicted)" in text.stdout
    assert "a request of" in text.stdout
    bad = runner.invoke(app, ["measure", "--patch", "64", "--device-memory", "rtx4600"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: device memory must be a size such "
                                                        "as 12GiB or a card name")
    assert "did you mean 'rtx4060'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_papers_full_volume_does_not_fit_an_rtx4060() -> None:
    result = runner.invoke(app, ["measure", "--patch", "240,240,160", "--backend", "simulate",
                                 "--device-memory", "rtx4060", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "oom" and data["oom"]["capacity_bytes"] == 8_318_222_336


def test_plan_never_proposes_what_the_replay_says_runs_out_of_memory() -> None:
    card = parse_device_memory("40MiB")
    rule = Criterion("allocated", context=0, workspace=0, card=card)
    plan = largest_patch(SMALL, card.total_bytes, (64, 64, 64), criterion=rule)
    (best,) = plan.candidates
    conf = parse_alloc_conf("")
    report = measure_memory(SMALL, best.patch, backend="simulate")
    assert not replay([e[:3] for e in report.allocation_log], conf,
                      capacity=allocator_capacity(card, 0, 0)).oom
    # without the card the same criterion proposes a larger patch, which the replay runs out on
    unguarded = largest_patch(SMALL, card.total_bytes, (64, 64, 64),
                              criterion=Criterion("allocated", context=0, workspace=0)).candidates[0]
    assert unguarded.voxels > best.voxels
    larger = measure_memory(SMALL, unguarded.patch, backend="simulate")
    assert replay([e[:3] for e in larger.allocation_log], conf,
                  capacity=allocator_capacity(card, 0, 0)).oom
    result = runner.invoke(app, ["plan", "--widths", "8,16", "--groups", "2", "--device-memory",
                                 "40MiB", "--context", "0B", "--workspace", "0B", "--criterion",
                                 "allocated", "--max-patch", "64", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["budget_bytes"] == card.total_bytes and not data["candidates"][0]["oom"]
    missing = runner.invoke(app, ["plan", "--widths", "8,16"])
    assert missing.exit_code == 1 and "--budget SIZE" in missing.stderr


def test_a_study_on_a_card_records_the_trials_that_would_run_out(tmp_path: Path) -> None:
    study_file = tmp_path / "card.toml"
    study_file.write_text('''
[study]
name = "card"
trials = 2
device_memory = "1GiB"

[fixed]
patch = 64

[space]
levels = 2
width = [8, 64]
groups = 2

[sampler]
name = "grid"
''')
    journal = tmp_path / "studies.journal"
    result = runner.invoke(app, ["sweep", str(study_file), "--memory-only", "--storage", str(journal)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="card-memory", storage=open_storage(str(journal)))
    status = {t.params["width"]: t.user_attrs["status"] for t in study.get_trials()}
    assert status == {8: "ok", 64: "oom"}
    oom = next(t for t in study.get_trials() if t.params["width"] == 64)
    assert oom.user_attrs["error"].startswith("predicted out of memory")
    assert study.user_attrs["budget_bytes"] == 2**30  # the card's total is the budget
    from revprof.sweep.objective import CONSTRAINT_NAME

    assert oom.constraints[CONSTRAINT_NAME] > 0  # infeasible
