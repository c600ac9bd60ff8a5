"""The way out of a sweep: ``revprof export`` writes spec files that ``measure/model/plan --spec``
take, reproducing the trial (memory to the byte)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.spec import ArchSpec
from revprof.train.specfile import read_spec_file
from revprof.sweep.pareto import pareto_front
from revprof.sweep.storage import open_storage

OLD_STORE = Path(__file__).parent / "data" / "old-store"


def invoke(*args: str, env: dict[str, str] | None = None) -> object:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def memory_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real memory-only sweep (5 trials, budget 1.2 MiB, some over it) in its own journal."""
    folder = tmp_path_factory.mktemp("sweep")
    study_file = folder / "tiny.toml"
    shutil.copy(OLD_STORE / "tiny.toml", study_file)
    journal = folder / "studies.journal"
    result = invoke("sweep", str(study_file), "--memory-only", "--trials", "5", "--storage",
                    str(journal))
    assert result.exit_code == 0, result.output
    return folder, journal


def _study(journal: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny-memory", storage=open_storage(str(journal)))


@pytest.mark.slow
def test_export_front_then_measure_gives_the_stored_peak_to_the_byte(
        memory_study: tuple[Path, Path], tmp_path: Path) -> None:
    _, journal = memory_study
    study = _study(journal)
    front = pareto_front(study)
    result = invoke("export", "tiny-memory", "--front", "--storage", str(journal), "--out",
                    str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert listing["kind"] == "export"
    assert [f["trial"] for f in listing["files"]] == [t.number for t in front]
    for entry, trial in zip(listing["files"], front, strict=True):
        path = Path(entry["path"])
        assert path.name == f"tiny-memory-trial{trial.number:04d}.json"
        loaded = read_spec_file(path)
        assert loaded.spec == ArchSpec.from_dict(trial.user_attrs["spec"])
        assert list(loaded.patch) == trial.user_attrs["patch"]
        assert loaded.header["trial"] == trial.number and loaded.header["pareto_front"] is True
        assert loaded.header["peak_bytes"] == trial.user_attrs["peak_bytes"]
        assert loaded.header["predicted_peak_bytes"] == trial.user_attrs["predicted_peak_bytes"]
        assert loaded.header["objectives"] == {"params": trial.values[0],
                                               "peak_bytes": trial.values[1]}
        assert loaded.settings.recipe.precision == "fp32" and loaded.settings.recipe.batch == 1
        assert loaded.settings.synthetic_cases == 3 and loaded.settings.recipe.steps == 3

        measured = invoke("measure", "--spec", str(path), "--backend", "simulate", "--json")
        assert measured.exit_code == 0, measured.output
        report = json.loads(measured.output)
        assert report["kind"] == "memory"
        assert report["peak_bytes"] == trial.user_attrs["peak_bytes"]
        assert report["params"] == trial.user_attrs["params"]

        summary = invoke("model", "--spec", str(path), "--json")
        assert json.loads(summary.output)["parameters"] == trial.user_attrs["params"]


@pytest.mark.slow
def test_export_one_trial_off_the_front_and_plan_with_it(memory_study: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    _, journal = memory_study
    study = _study(journal)
    infeasible = next(t for t in study.get_trials() if t.user_attrs["status"] == "infeasible")
    result = invoke("export", "tiny-memory", "--trial", str(infeasible.number), "--out",
                    str(tmp_path), env={"REVPROF_STORAGE": str(journal)})
    assert result.exit_code == 0, result.output
    path = tmp_path / f"tiny-memory-trial{infeasible.number:04d}.json"
    assert str(path) in result.output.replace("\n", "")
    header = read_spec_file(path).header
    assert header["status"] == "infeasible" and header["pareto_front"] is False
    assert header["predicted_peak_bytes"] > header["budget_bytes"]
    # over the budget at the trial's patch: the largest patch that fits is smaller
    planned = invoke("plan", "--spec", str(path), "--budget", "1.2MiB", "--max-patch", "16",
                     "--criterion", "allocated", "--json")
    assert planned.exit_code == 0, planned.output
    best = json.loads(planned.output)["candidates"][0]
    assert best["spec"] == infeasible.user_attrs["spec"] and best["patch"][0] < 16

    # a front trial with its own peak as the budget: exactly its patch, at exactly its peak
    trial = pareto_front(study)[0]
    assert invoke("export", "tiny-memory", "--trial", str(trial.number), "--out", str(tmp_path),
                  "--storage", str(journal)).exit_code == 0
    peak = trial.user_attrs["peak_bytes"]
    planned = invoke("plan", "--spec", str(tmp_path / f"tiny-memory-trial{trial.number:04d}.json"),
                     "--budget", f"{peak}B", "--max-patch", "16", "--criterion", "allocated",
                     "--json")
    best = json.loads(planned.output)["candidates"][0]
    assert best["patch"] == trial.user_attrs["patch"] and best["peak_bytes"] == peak


@pytest.mark.parametrize(("args", "message"), [
    (["--front", "--trial", "99"], "no trial 99 in study 'tiny-memory' (trials: 0–"),
    ([], "say which trials: --front (the Pareto front) or --trial N"),
])
def test_export_errors_are_one_line(memory_study: tuple[Path, Path], tmp_path: Path,
                                    args: list[str], message: str) -> None:
    _, journal = memory_study
    result = invoke("export", "tiny-memory", *args, "--storage", str(journal), "--out",
                    str(tmp_path))
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_unknown_study_names_the_ones_there(memory_study: tuple[Path, Path]) -> None:
    _, journal = memory_study
    result = invoke("export", "tiny", "--front", "--storage", str(journal))
    assert result.exit_code == 1 and "studies there: tiny-memory" in result.output


def test_spec_conflicts_and_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"revprof_spec_file": 1, "spec": {"arch": "revunet"}, "patch": [16, 16, 16], '
                   '"colour": "red"}')
    result = invoke("measure", "--spec", str(bad))
    assert result.exit_code == 1 and "unknown key 'colour'" in result.output
    bad.write_text("{not json")
    assert "not valid JSON" in invoke("model", "--spec", str(bad)).output
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"revprof_spec_file": 1, "spec": ArchSpec.paper_revunet().to_dict(),
                                "patch": [16, 16, 16]}))
    clash = invoke("measure", "--spec", str(good), "--levels", "3")
    assert clash.exit_code == 1 and "drop --levels" in clash.output


@pytest.mark.slow
@pytest.mark.parametrize("table", ["recipe", "fixed"])
def test_trained_trial_reruns_from_its_spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 table: str) -> None:
    """A training sweep's trial, exported and rerun with measure --spec --steps (the sweep's
    steps), trains on the same synthetic data with the same seed and the same recipe (learning
    rate, schedule, foreground oversampling, here set in [recipe] or, as older study files do,
    in [fixed]): the same Dice."""
    monkeypatch.chdir(tmp_path)
    study_file = tmp_path / "tiny.toml"
    run = 'lr = 0.02\nschedule = "poly"\nforeground = 0.9\n'
    text = (OLD_STORE / "tiny.toml").read_text().replace("trials = 3", "trials = 1")
    if table == "recipe":
        text = text.replace("[space]", f"[recipe]\noptimizer = \"sgd\"\nmomentum = 0.9\n{run}\n[space]")
    else:
        text = text.replace('device = "cpu"', f'device = "cpu"\n{run}')
    study_file.write_text(text)
    assert invoke("sweep", str(study_file)).exit_code == 0
    journal = tmp_path / ".revprof" / "studies.journal"
    study = optuna.load_study(study_name="tiny", storage=open_storage(str(journal)))
    trial = study.get_trials()[0]
    assert trial.user_attrs["status"] == "ok"
    assert invoke("export", "tiny", "--trial", "0", "--out", "specs").exit_code == 0
    exported = read_spec_file(Path("specs/tiny-trial0000.json")).settings.recipe
    assert (exported.lr, exported.schedule, exported.foreground) == (0.02, "poly", 0.9)
    assert exported.optimizer == ("sgd" if table == "recipe" else "adam")
    rerun = invoke("measure", "--spec", "specs/tiny-trial0000.json", "--steps", "3", "--json",
                   "--results", str(tmp_path / "runs.csv"))
    assert rerun.exit_code == 0, rerun.output
    result = json.loads(rerun.output.strip().splitlines()[-1])
    assert result["kind"] == "training" and result["recipe"] == exported.to_dict()
    assert result["patch"] == trial.user_attrs["patch"]
    assert result["dice"]["mean"] == pytest.approx(trial.user_attrs["dice"]["mean"], abs=1e-6)
    assert result["losses"] == pytest.approx(trial.user_attrs["losses"], abs=1e-6)


def test_report_names_each_front_point_and_its_spec_file(memory_study: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    from revprof.report.inputs import study_source
    from revprof.report.panels.pareto import pareto_info
    from revprof.report.panels.table import table_info

    _, journal = memory_study
    source = study_source("tiny-memory", str(journal))
    info = pareto_info(source.trials, source.budget_bytes, source.name)
    front_group = next(g for g in info.groups if g.kind == "front")
    revprof_front = {t.number for t in pareto_front(_study(journal))}
    assert set(front_group.numbers) == revprof_front
    for number, hover in zip(front_group.numbers, front_group.hover, strict=True):
        assert hover.startswith(f"<b>#{number}</b>")
        assert f"tiny-memory-trial{number:04d}.json: revprof export tiny-memory --trial {number}" in hover
    table = table_info(source.trials, source.budget_bytes, source.name, set(front_group.numbers))
    column = [c.name for c in table.columns].index("spec file")
    named = {row[0].sort: row[column].text for row in table.rows if row[column].text}
    invoke("export", "tiny-memory", "--front", "--storage", str(journal), "--out", str(tmp_path))
    assert sorted(named.values()) == sorted(p.name for p in tmp_path.iterdir())
    assert set(named) == revprof_front
