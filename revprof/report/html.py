"""Assemble one self-contained HTML report and write it atomically.

plotly.js is embedded once in ``<head>`` (``<script id="plotlyjs">``), every figure is a
``<div>`` with a fixed id, and nothing refers to a network address, so the file opens offline and
two builds from the same input are byte-identical.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from revprof.bounds import replace_file
from revprof.report import figures
from revprof.report.panels.table import Cell
from revprof.report.prepare import ReportData

PLOTLY_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}

# (div id, section title, what the figure explains)
SECTIONS = (
    ("fig-pareto", "Pareto front",
     "Each point is one trial. Highlighted: the non-dominated trials (no other feasible trial has "
     "both less memory and a higher score). Over-budget and failed trials are drawn with their own "
     "symbols; the dashed line is the memory budget. Hover for the network, Dice, peak and speed."),
    ("fig-dice", "Dice per region", "Mean validation Dice per region for the Pareto-front trials."),
    ("fig-depth", "Memory vs depth",
     "The reference network with 1–4 blocks per level, run reversibly, plainly and with "
     "activation checkpointing."),
    ("fig-patch", "Memory vs patch size",
     "Activation memory grows with the number of voxels, so with the cube of the patch edge."),
    ("fig-breakdown", "Memory breakdown", "What is live at the peak of a training step."),
    ("fig-levels", "Activations per level",
     "What the network keeps for backward at the end of forward, summed per resolution level."),
    ("fig-timeline", "Memory timeline",
     "Live bytes after every op of one training step (ops grouped to at most 1,500 points, each "
     "point the maximum of its group)."),
)

PARAMS_NOTE = (
    "No Dice in this study (memory only), so each trial is placed by its parameter count. "
    "Highlighted: the largest networks for their memory (non-dominated). Over-budget and failed "
    "trials are drawn with their own symbols; the dashed line is the memory budget.")

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
main { max-width: 1320px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.6em; margin: 0.4em 0; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.3em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
section { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 4px 16px 12px;
          margin-top: 16px; }
p.note { color: #555; margin: 0.3em 0 0.6em; }
table.facts td { padding: 2px 14px 2px 0; vertical-align: top; }
table.facts td:first-child { color: #666; white-space: nowrap; }
nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; }
table.trials { border-collapse: collapse; font-size: 0.86em; width: 100%; }
table.trials th, table.trials td { border-bottom: 1px solid #eee; padding: 3px 6px; text-align: left; }
table.trials th { cursor: pointer; background: #f2f4f7; position: sticky; top: 0; user-select: none; }
table.trials th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.trials th[aria-sort="descending"]::after { content: " \\25BC"; }
table.trials td.num { text-align: right; font-variant-numeric: tabular-nums; }
.trials-wrap { max-height: 640px; overflow: auto; }
ul.notes { color: #555; }
"""

SORT_SCRIPT = """
(function () {
  var table = document.getElementById("trials");
  if (!table) { return; }
  var heads = table.tHead.rows[0].cells;
  function key(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null || raw === "") { return null; }
    return numeric ? parseFloat(raw) : raw.toLowerCase();
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var numeric = th.getAttribute("data-numeric") === "1";
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
        if (x === null && y === null) { return 0; }
        if (x === null) { return 1; }
        if (y === null) { return -1; }
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""


def figure_divs(data: ReportData) -> list[tuple[str, str, str, str]]:
    """``(div id, title, note, html)`` for every figure the data allows, in page order."""
    pareto, dice, depth, patch = data.pareto, data.dice, data.depth, data.patch
    breakdown, timeline = data.breakdown, data.timeline
    makers: dict[str, Callable[[], go.Figure] | None] = {
        "fig-pareto": (lambda: figures.pareto_figure(pareto)) if pareto else None,
        "fig-dice": (lambda: figures.dice_figure(dice)) if dice else None,
        "fig-depth": (lambda: figures.depth_figure(depth)) if depth else None,
        "fig-patch": (lambda: figures.patch_figure(patch)) if patch else None,
        "fig-breakdown": (lambda: figures.breakdown_figure(breakdown)) if breakdown else None,
        "fig-levels": (lambda: figures.levels_figure(breakdown)) if breakdown else None,
        "fig-timeline": (lambda: figures.timeline_figure(timeline)) if timeline else None,
    }
    out = []
    for div_id, title, note in SECTIONS:
        make = makers[div_id]
        if make is None:
            continue
        fig = make()
        if data.pareto is not None and div_id == "fig-pareto" and data.pareto.y_kind == "params":
            title, note = "Parameters vs peak memory", PARAMS_NOTE
        body = pio.to_html(fig, config=PLOTLY_CONFIG, include_plotlyjs=False, full_html=False,
                           div_id=div_id, default_width="100%",
                           default_height=f"{fig.layout.height or 460}px", validate=True)
        out.append((div_id, title, note, body))
    return out


def _cell(cell: Cell, numeric: bool) -> str:
    sort = "" if cell.sort is None else (repr(float(cell.sort)) if numeric else str(cell.sort))
    cls = ' class="num"' if numeric else ""
    return f'<td{cls} data-sort="{html.escape(sort)}">{html.escape(cell.text)}</td>'


def table_html(data: ReportData) -> str:
    heads = "".join(f'<th data-numeric="{int(c.numeric)}" title="click to sort">{html.escape(c.name)}</th>'
                    for c in data.table.columns)
    rows = "\n".join("<tr>" + "".join(_cell(cell, col.numeric) for cell, col in
                                      zip(row, data.table.columns)) + "</tr>"
                     for row in data.table.rows)
    return (f'<div class="trials-wrap"><table id="trials" class="trials"><thead><tr>{heads}</tr>'
            f'</thead><tbody>\n{rows}\n</tbody></table></div>')


def render_html(data: ReportData) -> str:
    """The whole page as one string."""
    facts = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                      for k, v in data.header.facts)
    divs = figure_divs(data)
    nav = " ".join(f'<a href="#sec-{d[4:]}">{html.escape(t)}</a>' for d, t, _, _ in divs)
    nav += ' <a href="#sec-trials">All trials</a>'
    sections = "\n".join(
        f'<section id="sec-{div_id[4:]}"><h2>{html.escape(title)}</h2>'
        f'<p class="note">{html.escape(note)}</p>\n{body}\n</section>'
        for div_id, title, note, body in divs)
    notes = ""
    if data.notes:
        notes = '<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in data.notes) + "</ul>"
    summary = json.dumps({"figures": [d[0] for d in divs], "trials": len(data.table.rows)},
                         sort_keys=True)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(data.header.title)}</title>
<style>{STYLE}</style>
<script id="plotlyjs" type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<main>
<h1>{html.escape(data.header.title)}</h1>
<table class="facts">
{facts}
</table>
{notes}
<nav>{nav}</nav>
{sections}
<section id="sec-trials"><h2>All trials</h2><p class="note">Click a column to sort.</p>
{table_html(data)}
</section>
<script type="application/json" id="report-summary">{summary}</script>
</main>
<script>{SORT_SCRIPT}</script>
</body>
</html>
"""


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating its folder) through :func:`revprof.bounds.replace_file`:
    a reader (or a failure) never sees half a report.

    Raises:
        RevprofError: the folder or the file cannot be written.
    """
    return replace_file(path, text, name=str(path), make_folder=True)
