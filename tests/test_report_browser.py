"""The report in a real headless Chromium, offline: every figure drawn, the expected points, no
errors, no network request. Screenshots for a person to look at go to $REVPROF_SCREENSHOT_DIR
(default: /tmp/revprof-report-screenshots; the paths are printed, run with -s to see them)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from revprof.report import write_report
from revprof.report.html import SECTIONS
from revprof.report.inputs import study_source
from revprof.report.prepare import prepare

from browser import external_references, render, screenshot
from test_report_support import shared_simulations, two_study_store  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return two_study_store(tmp_path_factory.mktemp("store"))


def expected_points(data) -> dict[str, list[int]]:
    """Points per trace of each figure, from the prepared data."""
    out: dict[str, list[int]] = {}
    if data.pareto:
        out["fig-pareto"] = [len(g.numbers) for g in data.pareto.groups]
    if data.dice:
        out["fig-dice"] = [len(data.dice.labels)] * 4
    if data.depth:
        out["fig-depth"] = [len(data.depth.depths)] * len(data.depth.series)
    if data.patch:
        out["fig-patch"] = [len(data.patch.patches)] * len(data.patch.series)
    if data.breakdown:
        out["fig-breakdown"] = [len(data.breakdown.bars)] * len(data.breakdown.categories)
        out["fig-levels"] = [len(data.breakdown.levels)] * len(data.breakdown.level_bars)
    if data.timeline:
        out["fig-timeline"] = [n for p in data.timeline.panels  # live bytes, then reserved if known
                               for n in ([len(p.x), len(p.reserved)] if p.reserved else [len(p.x)])]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("study, figures", [
    ("quick", [s[0] for s in SECTIONS]),
    ("memory", [s[0] for s in SECTIONS if s[0] != "fig-dice"]),
])
def test_report_renders_offline_in_chromium(store, tmp_path, study, figures):
    page = write_report(study, str(store), tmp_path / f"{study}.html")
    assert external_references(page.read_text(encoding="utf-8")) == []
    data = prepare(study_source(study, str(store)))

    summary = render(page)

    assert summary["errors"] == [] and summary["console"] == []
    assert summary["requests"] == []
    assert summary["plotly"]
    assert [f["id"] for f in summary["figures"]] == figures
    points = expected_points(data)
    for figure in summary["figures"]:
        assert figure["laidOut"] and figure["svgs"] >= 1, figure["id"]
        assert figure["drawn"] == len(figure["traces"]), figure["id"]  # every trace drawn
        assert [t["points"] for t in figure["traces"]] == points[figure["id"]], figure["id"]
        assert figure["height"] > 200, figure["id"]
    assert summary["tableRows"] == len(data.table.rows) == 7

    shots = Path(os.environ.get("REVPROF_SCREENSHOT_DIR")
                 or Path(tempfile.gettempdir()) / "revprof-report-screenshots")
    png = screenshot(page, shots / f"report-{study}.png", size=(1400, 4000))
    assert png.stat().st_size > 50_000
    print(f"screenshot: {png}")


def test_probe_catches_errors_and_requests(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><head></head><body><img src="http://example.com/x.png">'
                    '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    summary = render(page, budget_ms=3000)
    assert summary["requests"] == ["http://example.com/x.png"]
    assert any("boom" in line for line in summary["console"])
    assert any("undefinedFunction" in e for e in summary["errors"])
    assert external_references(page.read_text()) == ["http://example.com/x.png"]
