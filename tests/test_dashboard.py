"""optuna-dashboard (the optional extra revprof[dashboard]) on a revprof journal, over HTTP:
objectives named, infeasible trials marked infeasible, the same Pareto front as revprof's."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from conftest import require
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.sweep.pareto import pareto_front
from revprof.sweep.storage import open_storage

OLD_STORE = Path(__file__).parent / "data" / "old-store"
DASHBOARD = Path(sys.executable).parent / "optuna-dashboard"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_optuna_dashboard_reads_a_revprof_journal(tmp_path: Path) -> None:
    require(DASHBOARD.exists(), "optuna-dashboard is not installed (pip install revprof[dashboard])")
    study_file = tmp_path / "tiny.toml"
    shutil.copy(OLD_STORE / "tiny.toml", study_file)
    journal = tmp_path / "studies.journal"
    result = CliRunner().invoke(app, ["sweep", str(study_file), "--memory-only", "--trials", "5",
                                      "--storage", str(journal)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny-memory", storage=open_storage(str(journal)))
    infeasible = {t.number for t in study.get_trials() if t.user_attrs["status"] == "infeasible"}
    assert infeasible  # the study file enqueues a network over the budget
    ours = {t.number for t in pareto_front(study)}

    port = _free_port()
    server = subprocess.Popen([str(DASHBOARD), str(journal), "--host", "127.0.0.1", "--port",
                               str(port), "--quiet"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(f"{base}/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode(errors="replace") if server.stdout else ""
                    pytest.fail(f"optuna-dashboard did not start: {output[-2000:]}")
                time.sleep(0.3)
        assert [s["study_name"] for s in studies] == ["tiny-memory"]
        assert studies[0]["directions"] == ["maximize", "minimize"]
        detail = _get(f"{base}/studies/{studies[0]['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert detail["objective_names"] == ["params", "peak_bytes"]
    trials = {t["number"]: t for t in detail["trials"]}
    assert set(trials) == {t.number for t in study.get_trials()}
    for number, trial in trials.items():
        feasible = all(c <= 0 for c in trial["constraints"])
        assert trial["constraints"], f"trial {number} has no constraint in the dashboard"
        assert feasible == (number not in infeasible), number

    def repeat(trial: dict) -> bool:  # revprof counts a repeated network once; Optuna keeps both
        return any(a["key"] == "duplicate_of" for a in trial["user_attrs"])

    front = {t["number"] for t in detail["best_trials"] if not repeat(t)}
    assert front == ours
    assert not front & infeasible
