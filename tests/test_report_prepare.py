"""Report data preparation and loading, checked exactly and without plotly or a browser."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from revprof.errors import RevprofError
from revprof.recipe import PAPER, Recipe
from revprof.memory import CATEGORIES, MemoryReport, Timeline
from revprof.report.inputs import Dice, Source, TrialRow, load_results, study_source
from revprof.report.panels.common import Series
from revprof.report.panels.memory import Memory
from revprof.report.panels.pareto import PointGroup, pareto_front, pareto_info
from revprof.report.panels.reference import reference_trial
from revprof.report.panels.scaling import DEPTHS, patch_sizes
from revprof.report.panels.table import Cell
from revprof.report.panels.timeline import timeline_panel
from revprof.report.prepare import prepare
from revprof.spec import ArchSpec
from revprof.sweep.record import TrialRecord
from revprof.sweep.storage import open_storage

from test_report_support import journal, tiny

optuna.logging.set_verbosity(optuna.logging.WARNING)
PATCH = (16, 16, 16)


# ---- a fake simulator: exact, instant numbers ----------------------------------------------
def fake_peak(spec: ArchSpec, patch: tuple[int, int, int]) -> int:
    factor = {"reversible": 1, "checkpoint": 2, "plain": 3}.get(spec.execution, 3)
    return factor * spec.encoder_depth[0] * patch[0] * patch[1] * patch[2] + 1000


def fake_report(spec: ArchSpec, patch: tuple[int, int, int], recipe: Recipe) -> MemoryReport:
    peak = fake_peak(spec, patch)
    breakdown = {"parameters": 100, "gradients": 10, "optimizer_state": 200, "activations": peak - 410,
                 "other": 100}
    # two steps of 10 ops: forward 4, backward 4, optimizer 2; the last step peaks at op 6
    step = [1, 2, 3, 4, peak, 5, 4, 3, 2, 1]
    timeline = Timeline(step + step, [(0, "forward", 0), (4, "backward", 0), (8, "optimizer", 0),
                                      (10, "forward", 1), (14, "backward", 1), (18, "optimizer", 1)])
    parts = {"stem": 1, "encoder.0": 10, "decoder.0": 20, "encoder.1": 100, "decoder.1": 200,
             "head": 2, "loss": 5}
    return MemoryReport(spec=spec, patch=patch, recipe=recipe, backend="simulate",
                        device="cpu (fake tensors)", params=1, peak_bytes=peak, breakdown=breakdown,
                        activations_by_part=parts, saved_after_forward=parts, peak_phase="backward",
                        peak_step=1, timeline=timeline, steps=2, seconds=0.0)


def row(number: int, spec: ArchSpec, status: str = "ok", peak: int | None = None,
        dice: float | None = None, params: int = 1000, patch=PATCH) -> TrialRow:
    peak = fake_peak(spec, patch) if peak is None else peak
    return TrialRow(number=number, state="COMPLETE", status=status, spec=spec,
                    spec_words=spec.describe(), patch=patch, batch=1, precision="fp32",
                    peak_bytes=peak, predicted_peak_bytes=peak, params=params,
                    dice=None if dice is None else Dice(dice, dice, dice, dice))


def source(trials, budget=None, memory_only=False) -> Source:
    return Source(kind="study", name="s", location="mem", trials=tuple(trials), budget_bytes=budget,
                  memory_only=memory_only)


# ---- the front --------------------------------------------------------------------------------
def test_pareto_front_keeps_non_dominated_points_and_the_first_of_ties():
    points = [(0, 10, 0.5), (1, 20, 0.7), (2, 20, 0.6), (3, 5, 0.4), (4, 30, 0.7), (5, 10, 0.5)]
    assert pareto_front(points) == [0, 1, 3]
    assert pareto_front([]) == []


def test_pareto_info_groups_front_dominated_over_budget_and_failures():
    trials = [
        row(0, tiny(1), peak=100, dice=0.7), row(1, tiny(1, "plain"), peak=200, dice=0.6),
        row(2, tiny(2), peak=300, dice=0.8), row(3, tiny(2, "plain"), status="infeasible", peak=900),
        row(4, tiny(3, "plain"), status="oom", peak=800), row(5, tiny(3), status="diverged", peak=250),
        row(6, tiny(4), peak=600, dice=0.9),  # trained, but over the budget given now
    ]
    info = pareto_info(trials, budget=500)
    assert info.y_kind == "dice" and info.budget_bytes == 500
    assert [(g.kind, g.numbers, g.peak_bytes, g.y) for g in info.groups] == [
        ("front", (0, 2), (100, 300), (0.7, 0.8)),
        ("dominated", (1,), (200,), (0.6,)),
        ("infeasible", (6, 3), (600, 900), (0.0, 0.0)),
        ("oom", (4,), (800,), (0.0,)),
        ("diverged", (5,), (250,), (0.0,)),
    ]
    hover = info.groups[0].hover[0]
    assert "revunet 8-16 enc 1 dec 1 reversible" in hover and "Dice WT 0.700" in hover
    assert "patch 16³" in hover


def test_memory_only_front_is_parameters_against_memory():
    trials = [row(0, tiny(1), peak=100, params=10), row(1, tiny(2), peak=150, params=20),
              row(2, tiny(2, "plain"), peak=400, params=20)]
    info = pareto_info(trials, budget=None)
    assert info.y_kind == "params" and info.y_label == "parameters"
    assert info.groups == (PointGroup("Pareto front", "front", (0, 1), (100, 150), (10.0, 20.0),
                                      info.groups[0].hover),
                           PointGroup("dominated", "dominated", (2,), (400,), (20.0,),
                                      info.groups[1].hover))


def test_reference_is_the_best_feasible_trial_else_the_first():
    trials = [row(0, tiny(1), peak=100, dice=0.5), row(1, tiny(2), peak=900, dice=0.9),
              row(2, tiny(2, "plain"), peak=200, dice=0.7)]
    assert reference_trial(trials, budget=500).number == 2
    assert reference_trial(trials, budget=None).number == 1
    assert reference_trial([row(3, tiny(1)), row(1, tiny(2))], budget=None).number == 1
    assert reference_trial(trials, None, number=0).number == 0
    with pytest.raises(RevprofError, match="--reference 7: no trial"):
        reference_trial(trials, None, number=7)


# ---- figures about the reference network ------------------------------------------------------
def test_prepare_with_a_fake_simulator_gives_exact_figure_data():
    ref = row(0, tiny(2), dice=0.8)
    known = row(1, tiny(1, "plain"), dice=0.5, peak=fake_peak(tiny(1, "plain"), PATCH))
    trials = [ref, known, row(2, tiny(1), dice=0.6)]
    memory = Memory(trials, simulator=fake_report)
    data = prepare(source(trials, budget=10**9), memory=memory, date="2025-01-02")

    voxels = 16**3
    assert data.depth.depths == DEPTHS
    assert data.depth.series == (
        Series("reversible", tuple(d * voxels + 1000 for d in DEPTHS)),
        Series("plain", tuple(3 * d * voxels + 1000 for d in DEPTHS)),
        Series("checkpoint", tuple(2 * d * voxels + 1000 for d in DEPTHS)),
    )
    # depth 1 plain came from trial 1, not the simulator; nor did the reference's own peak
    assert (tiny(1, "plain"), PATCH, PAPER) not in memory.simulated

    assert data.patch.patches == ((8, 8, 8), (12, 12, 12), (16, 16, 16))
    assert data.patch.labels == ("8³", "12³", "16³")
    assert data.patch.series[0] == Series("reversible", tuple(2 * e**3 + 1000 for e in (8, 12, 16)))
    assert [s.name for s in data.patch.series] == ["reversible", "plain"]

    assert [b.label for b in data.breakdown.bars] == ["#0 reversible", "#0 plain", "#0 checkpoint"]
    peak = fake_peak(tiny(2), PATCH)
    assert data.breakdown.bars[0].categories == (100, 10, 200, peak - 410, 100)
    assert data.breakdown.levels == ("level 0", "level 1", "loss")
    assert data.breakdown.level_bars[0].values == (1 + 10 + 20 + 2, 100 + 200, 5)

    panel = data.timeline.panels[0]
    assert panel.name == "reversible" and panel.ops == 10
    assert panel.bytes == (1, 2, 3, 4, peak, 5, 4, 3, 2, 1) and panel.x == tuple(range(10))
    assert panel.spans == ((0, 4, "forward"), (4, 8, "backward"), (8, 10, "optimizer"))
    assert panel.peak_bytes == peak

    assert data.dice.labels == tuple(f"#{n}" for n in data.pareto.groups[0].numbers)
    facts = dict(data.header.facts)
    assert facts["date"] == "2025-01-02"
    assert facts["trials"] == "3: 3 ok"
    assert facts["reference network"].startswith("#0: revunet 8-16 enc 2 dec 2 reversible, patch 16³")
    assert len(data.table.rows) == 3
    assert data.table.rows[0][0] == Cell("#0", 0)


def test_timeline_is_reduced_keeping_the_peak():
    report = fake_report(tiny(1), PATCH, PAPER)
    panel = timeline_panel("reversible", "words", report, max_points=4)
    assert panel.x == (0, 3, 6, 9)
    assert panel.bytes == (3, report.peak_bytes, 4, 1)
    assert panel.ops == 10


def test_patch_sizes_of_the_paper_network():
    spec = ArchSpec.paper_revunet()
    assert patch_sizes(spec, (128, 128, 128)) == [(64, 64, 64), (96, 96, 96), (128, 128, 128)]
    assert patch_sizes(spec, (128, 128, 128), extra=[(160, 192, 160)])[-1] == (160, 192, 160)
    assert patch_sizes(spec, (160, 192, 160)) == [(80, 80, 80), (128, 128, 128), (160, 160, 160),
                                                  (160, 192, 160)]


def test_memory_only_study_has_no_dice_and_says_so():
    trials = [row(0, tiny(1)), row(1, tiny(2))]
    data = prepare(source(trials, memory_only=True), memory=Memory(trials, simulator=fake_report),
                   date="d")
    assert data.dice is None and data.pareto.y_kind == "params"
    assert data.depth is not None and data.timeline is not None
    assert any("Memory-only" in note for note in data.notes)
    names = [c.name for c in data.table.columns]
    assert "Dice mean" not in names and "s / step" not in names and "peak" in names
    assert all(len(r) == len(names) for r in data.table.rows)


def test_nonewnet_reference_has_no_depth_figure():
    spec = ArchSpec(arch="nonewnet", widths=(8, 16), encoder_depth=(1, 1), decoder_depth=(1, 1),
                    encoder_reversible=(False, False), decoder_reversible=(False, False), groups=2)
    trials = [row(0, spec)]
    data = prepare(source(trials), memory=Memory(trials, simulator=fake_report), date="d")
    assert data.depth is None
    assert [s.name for s in data.patch.series] == ["plain", "checkpoint"]
    assert any("needs a revunet" in note for note in data.notes)


# ---- loading studies --------------------------------------------------------------------------
def _attrs(spec: ArchSpec, peak: int, status: str = "ok", dice=None) -> dict:
    attrs = {"spec": spec.to_dict(), "spec_words": spec.describe(), "patch": list(PATCH),
             "batch": 1, "precision": "fp32", "status": status, "predicted_peak_bytes": peak,
             "peak_bytes": peak, "params": 10, "device": "cuda:0 (NVIDIA H100)",
             "environment": {"torch": "2.13.0", "cuda": "12.8"},
             "breakdown": dict.fromkeys(CATEGORIES, peak // 5), "activations_by_part": {"stem": 1}}
    if dice is not None:
        attrs["dice"] = {"wt": dice, "tc": dice, "et": dice, "mean": dice}
    return attrs


def _study(storage, name="quick"):
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    study.set_user_attr("budget_bytes", 5000)
    study.set_user_attr("fixed", {"patch": list(PATCH), "batch": 1, "data": "synthetic"})
    study.add_trial(optuna.trial.create_trial(values=[0.7, 100], user_attrs=_attrs(tiny(1), 100, dice=0.7)))
    study.add_trial(optuna.trial.create_trial(values=[0.0, 9000],
                                              user_attrs=_attrs(tiny(2), 9000, "infeasible")))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={**_attrs(tiny(3), 50, "failed"),
                                                          "error": "boom"}))
    return study


def test_load_study_from_a_journal_and_sqlite(tmp_path):
    path = tmp_path / "s.journal"
    _study(journal(path))
    url = f"sqlite:///{tmp_path / 's.db'}"
    _study(url)
    for storage in (str(path), url):
        src = study_source("quick", storage)
        assert [(t.number, t.state, t.status) for t in src.trials] == [
            (0, "COMPLETE", "ok"), (1, "COMPLETE", "infeasible"), (2, "FAIL", "failed")]
        assert src.budget_bytes == 5000 and src.data == "synthetic" and not src.memory_only
        assert src.trials[0].dice == Dice(0.7, 0.7, 0.7, 0.7)
        assert src.trials[0].spec == tiny(1) and src.trials[0].patch == PATCH
        assert src.trials[2].error == "boom"
        assert src.trials[0].completed is not None and src.trials[0].completed.tzinfo is not None


def test_default_store_is_the_sweeps_journal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RevprofError, match=r"no study store at \.revprof/studies\.journal"):
        study_source("quick")
    (tmp_path / ".revprof").mkdir()
    _study(journal(tmp_path / ".revprof" / "studies.journal"))
    assert len(study_source("quick").trials) == 3


def test_unknown_study_and_empty_store_are_clear(tmp_path):
    path = tmp_path / "s.journal"
    _study(journal(path))
    with pytest.raises(RevprofError) as error:
        study_source("quik", str(path))
    assert str(error.value) == (f"no study named 'quik' in {path} (did you mean 'quick'?); "
                                f"studies there: quick")
    empty = tmp_path / "empty.journal"
    journal(empty)
    empty.touch()
    with pytest.raises(RevprofError, match="holds no studies"):
        study_source("quick", str(empty))
    with pytest.raises(RevprofError, match="no such journal file"):
        study_source("quick", str(tmp_path / "missing.journal"))
    with pytest.raises(RevprofError, match="no such database file"):
        open_storage(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "missing.journal").exists()
    optuna.create_study(study_name="bare", storage=journal(path))
    with pytest.raises(RevprofError, match="has no finished trials with a spec"):
        study_source("bare", str(path))


# ---- loading results files --------------------------------------------------------------------
def _results(n: int = 2) -> pd.DataFrame:
    rows = []
    for i in range(n):
        spec = tiny(i + 1)
        rows.append({"spec": spec.to_json(), "patch": "16,16,16", "batch": 1, "precision": "fp32",
                     "status": "ok", "peak_bytes": 1000 * (i + 1), "predicted_peak_bytes": 990 * (i + 1),
                     "dice_wt": 0.8, "dice_tc": 0.7, "dice_et": 0.6, "dice_mean": math.nan,
                     "seconds_per_step": 0.5, "device": "cpu", "timestamp": f"2025-01-0{i + 1}T10:00:00Z"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_load_results_csv_and_json_lines(tmp_path, suffix):
    frame = _results()
    path = tmp_path / f"runs{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.assign(patch=[[16, 16, 16]] * len(frame)).to_json(path, orient="records", lines=True)
    src = load_results(path)
    assert src.kind == "results" and src.name == "runs"
    first = src.trials[0]
    assert first.label == "row 0" and first.spec == tiny(1) and first.patch == PATCH
    assert first.peak_bytes == 1000 and first.predicted_peak_bytes == 990
    assert first.dice.mean == pytest.approx(0.7)
    assert first.completed.isoformat() == "2025-01-01T10:00:00+00:00"


def test_a_results_row_reads_back_as_the_trial_record_that_wrote_it(tmp_path):
    """``revprof measure --steps`` writes ``TrialRecord.result_columns()``; the report reads the
    same record back (``TrialRecord.from_result_columns``), through a real CSV file."""
    spec = tiny(2, "plain")
    record = TrialRecord(spec=spec.to_dict(), spec_words=spec.describe(), patch=[16, 16, 8],
                         batch=2, precision="bf16", status="diverged", peak_bytes=12345,
                         predicted_peak_bytes=12000, dice={"wt": 0.5, "tc": 0.25, "et": 0.0,
                                                           "mean": 0.25},
                         seconds_per_step=0.125, voxels_per_second=4096.0, device="cpu",
                         environment={"torch": "2.13.0"}, error="loss is nan")
    columns = {"timestamp": "2025-01-02T03:04:05+00:00", **record.result_columns(), "steps": 3}
    back = TrialRecord.from_result_columns(columns)
    assert back.spec == record.spec and back.patch == "16,16,8" and back.dice == record.dice
    assert (back.batch, back.precision, back.status, back.error) == (2, "bf16", "diverged", "loss is nan")
    assert back.extra["steps"] == 3 and back.environment is None  # nested columns stay text
    path = tmp_path / "runs.csv"
    pd.DataFrame([columns]).to_csv(path, index=False)
    row = load_results(path).trials[0]
    assert row.spec == spec and row.patch == (16, 16, 8) and row.batch == 2
    assert (row.status, row.peak_bytes, row.predicted_peak_bytes) == ("diverged", 12345, 12000)
    assert row.dice == Dice(0.5, 0.25, 0.0, 0.25) and row.seconds_per_step == 0.125
    assert row.error == "loss is nan" and row.completed.isoformat() == "2025-01-02T03:04:05+00:00"
    no_dice = {**columns, "dice_wt": math.nan, "dice_tc": "", "dice_et": None, "dice_mean": None}
    assert TrialRecord.from_result_columns(no_dice).dice is None


def test_results_with_missing_columns_or_rows_are_clear(tmp_path):
    path = tmp_path / "runs.csv"
    _results().drop(columns=["spec", "peak_bytes"]).to_csv(path, index=False)
    with pytest.raises(RevprofError, match=r"lacks required column\(s\) spec, peak_bytes \(it has: patch"):
        load_results(path)
    _results().iloc[:0].to_csv(path, index=False)
    with pytest.raises(RevprofError, match="has no rows"):
        load_results(path)
    path.write_text("")
    with pytest.raises(RevprofError, match="is empty"):
        load_results(path)
    bad = _results()
    bad.loc[1, "spec"] = json.dumps({"arch": "revunet", "widths": [7, 14]})
    bad.to_csv(path, index=False)
    with pytest.raises(RevprofError, match="row 1: spec is not a valid ArchSpec"):
        load_results(path)
    with pytest.raises(RevprofError, match="unknown format '.txt'"):
        (tmp_path / "r.txt").write_text("x")
        load_results(tmp_path / "r.txt")
    with pytest.raises(RevprofError, match="does not exist"):
        load_results(Path(tmp_path / "nope.csv"))


def test_paper_study_report_has_the_depth_figure_and_no_unused_training_settings():
    """The shipped paper study, memory only: its first trial is the No New-Net baseline, yet the
    reference network is a revunet, so the report has the memory-vs-depth figure; the header
    leaves out the training settings (steps, val_cases) a memory-only study never used."""
    from revprof.sweep.space import first_network, suggest
    from revprof.sweep.studyfile import read_study_file

    study = read_study_file(Path(__file__).resolve().parents[1] / "studies" / "paper.toml")
    assert first_network(study)[0].arch == "nonewnet"

    class Fixed:  # an enqueued trial as the sweep sees it
        def __init__(self, entry):
            self.params, self.user_attrs = entry.params, entry.user_attrs()

        def suggest_categorical(self, name, choices):
            return self.params.get(name, choices[0])

        def suggest_int(self, name, low, high, step=1, log=False):
            return int(self.params.get(name, low))

    trials = []
    for number, entry in enumerate(study.enqueue):
        spec, patch = suggest(Fixed(entry), study)
        trials.append(row(number, spec, patch=patch))
    src = Source(kind="study", name="paper-memory", location="mem", trials=tuple(trials),
                 memory_only=True, fixed=study.fixed_dict(), data="synthetic")
    data = prepare(src, memory=Memory(trials, simulator=fake_report), date="d")
    assert data.depth is not None
    ref = reference_trial(trials, None)
    assert ref.number == 1 and ref.spec.arch == "revunet"
    facts = dict(data.header.facts)
    assert "steps" not in facts["fixed settings"] and "val_cases" not in facts["fixed settings"]
    assert "patch 128³" in facts["fixed settings"] and "data" not in facts


def test_each_report_simulates_each_configuration_once_and_shares_nothing():
    """A report simulates every configuration it needs exactly once (14 here: 12 depth points
    less the 3 that trials measured, 2 smaller patches for each of 2 executions, and the
    reference's own breakdown, which its trial did not record); a second report in the same
    process simulates again, into its own cache."""
    calls: list[tuple] = []

    def counting(spec, patch, recipe):
        calls.append((spec, patch, recipe))
        return fake_report(spec, patch, recipe)

    ref = row(0, tiny(2), dice=0.8)
    known = row(1, tiny(1, "plain"), dice=0.5)
    trials = [ref, known, row(2, tiny(1), dice=0.6)]
    first = Memory(trials, simulator=counting)
    data = prepare(source(trials, budget=10**9), memory=first, date="d")
    assert len(calls) == 14 and len(set(calls)) == 14
    assert first.simulated == calls
    # the figures that need the same configuration twice (breakdown, timeline) got one simulation
    assert (tiny(2, "plain"), PATCH, PAPER) in calls and data.timeline is not None
    second = Memory(trials, simulator=counting)
    assert prepare(source(trials, budget=10**9), memory=second, date="d") == data
    assert len(calls) == 28 and calls[14:] == calls[:14] and second.simulated == calls[14:]
