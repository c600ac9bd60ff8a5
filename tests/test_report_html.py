"""The HTML report end to end (real simulate measurements of tiny networks), and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import revprof.report.html as report_html
from revprof.cli.app import app
from revprof.errors import RevprofError
from revprof.report import write_report, write_report_from_results
from revprof.report.html import SECTIONS

from browser import external_references
from test_report_support import shared_simulations, two_study_store  # noqa: F401 - autouse fixture

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return two_study_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def quick_html(store, tmp_path_factory) -> Path:
    return write_report("quick", str(store), tmp_path_factory.mktemp("out") / "quick.html")


def test_report_is_byte_identical_when_built_twice(store, quick_html, tmp_path):
    again = write_report("quick", str(store), tmp_path / "again.html")
    assert again.read_bytes() == quick_html.read_bytes()
    text = quick_html.read_text(encoding="utf-8")
    assert "2025-03-01 12:06 UTC (latest trial)" in text  # the date comes from the store
    dated = write_report("quick", str(store), tmp_path / "dated.html", date="2025-12-24")
    assert "<td>date</td><td>2025-12-24</td>" in dated.read_text(encoding="utf-8")


def test_report_is_self_contained_with_stable_ids(quick_html):
    text = quick_html.read_text(encoding="utf-8")
    assert text.count('<script id="plotlyjs"') == 1
    assert external_references(text) == []
    assert "cdn.plot.ly/plotly" not in re.sub(r'<script id="plotlyjs".*?</script>', "", text, flags=re.S)
    for div_id, _, _ in SECTIONS:
        assert f'<div id="{div_id}"' in text, div_id
    assert text.count("<tr><td") >= 7 and 'id="trials"' in text
    assert not list(quick_html.parent.glob(".*tmp"))


def test_memory_only_report_leaves_out_dice(store, tmp_path):
    text = write_report("memory", str(store), tmp_path / "m.html").read_text(encoding="utf-8")
    assert 'id="fig-dice"' not in text and 'id="fig-pareto"' in text
    assert "Parameters vs peak memory" in text and 'id="fig-timeline"' in text


def test_report_from_a_results_file(store, tmp_path):
    from revprof.report.inputs import study_source

    rows = [{"spec": t.spec.to_json(), "patch": ",".join(map(str, t.patch)), "batch": t.batch,
             "precision": t.precision, "status": t.status, "peak_bytes": t.peak_bytes,
             "predicted_peak_bytes": t.predicted_peak_bytes,
             "dice_wt": t.dice.wt if t.dice else None, "dice_tc": t.dice.tc if t.dice else None,
             "dice_et": t.dice.et if t.dice else None, "dice_mean": t.dice.mean if t.dice else None,
             "seconds_per_step": t.seconds_per_step, "device": t.device}
            for t in study_source("quick", str(store)).trials]
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    text = write_report_from_results(path, tmp_path / "runs.html").read_text(encoding="utf-8")
    assert "revprof report · runs" in text and 'id="fig-dice"' in text
    assert "<td>date</td><td>not recorded</td>" in text


def test_cli_writes_the_report_and_prints_its_path(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".revprof").mkdir()
    (tmp_path / ".revprof" / "studies.journal").write_bytes(store.read_bytes())
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or False)
    result = runner.invoke(app, ["report", "--study", "memory", "--out", "reports/m.html", "--open"])
    assert result.exit_code == 0, result.output
    assert "reports/m.html" in result.output and (tmp_path / "reports" / "m.html").exists()
    assert opened == [(tmp_path / "reports" / "m.html").resolve().as_uri()]
    assert "no browser" in result.output
    result = runner.invoke(app, ["report", "--study", "memory", "--budget", "1MiB"])
    assert result.exit_code == 0, result.output
    assert "1.00 MiB" in (tmp_path / "reports" / "memory.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("args, message", [
    (["--study", "nope"], "no study named 'nope'"),
    ([], "give either --study NAME"),
    (["--study", "quick", "--results", "r.csv"], "give either --study NAME"),
    (["--results", "missing.csv"], "results file missing.csv does not exist"),
    (["--study", "quick", "--reference", "99"], "--reference 99: no trial"),
])
def test_cli_bad_input_gives_one_line_and_no_file(store, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", *args, "--storage", str(store)] if "--study" in args
                           else ["report", *args], catch_exceptions=False)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())


def test_a_failure_while_writing_leaves_the_old_report_alone(store, tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    out.write_text("old")

    def broken(data):
        raise RevprofError("render failed")

    monkeypatch.setattr("revprof.report.render_html", broken)
    with pytest.raises(RevprofError):
        write_report("quick", str(store), out)
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("revprof.bounds.os.replace", full_disk)  # the one atomic write
    with pytest.raises(RevprofError, match="cannot write .*No space left on device"):
        report_html.write_atomic(out, "new")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_a_missing_browser_skips_but_fails_under_ci(monkeypatch):
    import browser

    monkeypatch.delenv("REVPROF_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        browser.find_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no Chromium found"):
        browser.find_chromium()
