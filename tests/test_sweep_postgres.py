"""Distributed sweeps: a real PostgreSQL server (started here) and two worker processes, as on
two machines, joining one study. Under CI=true a missing PostgreSQL or psycopg2 fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pg_server import postgres_server  # noqa: F401 - the fixture
from revprof.sweep.pareto import pareto_front
from revprof.sweep.storage import open_storage
from study_helpers import TINY_TRAINING

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

STUDY = """
[study]
name = "shared"
trials = {trials}
""" + TINY_TRAINING + """
[space]
levels = 2
width = [4, 6, 8]
reversible = ["all", "none", "encoder", "decoder"]

[sampler]
name = "tpe"
n_startup_trials = 2
"""


def start(folder: Path, url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "revprof", "sweep", "shared.toml", "--storage",
                             url, *args], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def test_two_workers_join_one_study_through_postgres(tmp_path: Path, postgres_server) -> None:  # noqa: F811
    memory_only: list[str] = []
    trials = 6
    (tmp_path / "shared.toml").write_text(STUDY.format(trials=trials))
    url = postgres_server.url
    # two "machines": separate working directories, one study on the server
    hosts = [tmp_path / "a", tmp_path / "b"]
    for host in hosts:
        host.mkdir()
        (host / "shared.toml").write_text(STUDY.format(trials=trials))
    workers = [start(host, url, *memory_only, "--seed", str(i)) for i, host in enumerate(hosts)]
    outputs = []
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        outputs.append(output)
        assert worker.returncode == 0, output
    name = "shared-memory" if memory_only else "shared"
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    recorded = study.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in recorded), [t.state for t in recorded]
    assert trials <= len(recorded) <= trials + 1
    assert sorted(t.number for t in recorded) == list(range(len(recorded)))
    # none lost, none twice: every trial a worker reported is in the store, once
    reported = [line.split(" · ")[0] for out in outputs for line in out.splitlines()
                if line.startswith("trial ")]
    assert sorted(reported) == sorted(f"trial {t.number}" for t in recorded)
    assert all(any(line.startswith("trial ") for line in out.splitlines()) for out in outputs)
    # the Pareto front from the store agrees with Optuna's and nothing dominates it
    front = pareto_front(study)
    assert {t.number for t in front} == {t.number for t in study.best_trials
                                          if t.user_attrs["status"] == "ok"
                                          and "duplicate_of" not in t.user_attrs}
    assert front
    for trial in recorded:
        assert "spec" in trial.user_attrs and "peak_bytes" in trial.user_attrs
    # a rerun from either machine resumes the finished study
    again = start(hosts[0], url, *memory_only)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "nothing to run" in output, output
    # and the report reads the same server
    from revprof.report import write_report

    page = write_report(name, url, tmp_path / "pg.html", date="fixed")
    assert page.exists() and "fig-pareto" in page.read_text()


def test_unreachable_server_is_one_line(tmp_path: Path, postgres_server) -> None:  # noqa: F811
    (tmp_path / "shared.toml").write_text(STUDY.format(trials=1))
    bad = postgres_server.url.rsplit("/", 1)[0] + "/no_such_db"
    process = start(tmp_path, bad, "--memory-only")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: cannot open the study store {bad}: ")
    assert 'database "no_such_db" does not exist' in lines[0]
    # nothing listens on this port: the same single line
    closed = postgres_server.url.replace(f":{postgres_server.port}/", ":1/")
    process = start(tmp_path, closed, "--memory-only")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert output.strip().startswith(f"error: cannot open the study store {closed}: ")
    assert len(output.strip().splitlines()) == 1, output


def test_a_missing_prerequisite_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import pg_server

    monkeypatch.setattr(pg_server, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true and a PostgreSQL test prerequisite"):
        pg_server.missing("initdb not found")
    monkeypatch.setattr(pg_server, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="initdb not found"):
        pg_server.missing("initdb not found")
