"""Plotly figures from the prepared data (:mod:`revprof.report.panels`); no data work here."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from revprof.report.panels.breakdown import BreakdownInfo
from revprof.report.panels.common import patch_text
from revprof.report.panels.dice import DiceInfo
from revprof.report.panels.pareto import ParetoInfo
from revprof.report.panels.scaling import DepthInfo, PatchInfo
from revprof.report.panels.timeline import TimelineInfo
from revprof.units import format_bytes

TEMPLATE = "plotly_white"
EXECUTION_COLORS = {"reversible": "#1f77b4", "plain": "#d62728", "checkpoint": "#2ca02c"}
GROUP_STYLE = {
    "front": dict(color="#1f77b4", symbol="circle", size=12, line=dict(color="#0b3d66", width=1.5)),
    "dominated": dict(color="#9ecae1", symbol="circle", size=9),
    "infeasible": dict(color="#7f7f7f", symbol="x", size=10),
    "oom": dict(color="#d62728", symbol="x-thin-open", size=11, line=dict(color="#d62728", width=2)),
    "diverged": dict(color="#ff7f0e", symbol="triangle-down", size=10),
    "failed": dict(color="#8c564b", symbol="square-x-open", size=10),
    "interrupted": dict(color="#bcbd22", symbol="diamond-open", size=10),
}
CATEGORY_COLORS = ("#4c72b0", "#55a868", "#8172b2", "#c44e52", "#ccb974")
PHASE_COLORS = {"forward": "rgba(31,119,180,0.10)", "backward": "rgba(255,127,14,0.12)",
                "optimizer": "rgba(44,160,44,0.14)"}
REGION_COLORS = {"WT": "#2ca02c", "TC": "#ff7f0e", "ET": "#d62728", "mean": "#7f7f7f"}


def escape(text: object) -> str:
    """User or stored text for a plotly hover label, which renders HTML."""
    return html.escape(str(text))


def unit_for(largest: int | float) -> tuple[float, str]:
    """The binary unit an axis whose largest value is ``largest`` bytes reads best in."""
    for size, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if largest >= size:
            return float(size), name
    return 1.0, "B"


def _largest(*groups: object) -> int:
    values = [v for group in groups for v in group if v is not None]  # type: ignore[attr-defined]
    return max(values, default=0)


def _layout(fig: go.Figure, title: str, height: int = 460, top: int = 60) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.01), height=height,
                      margin=dict(l=70, r=30, t=top, b=60), legend=dict(orientation="v"),
                      hoverlabel=dict(align="left"))
    return fig


def _budget_h(fig: go.Figure, budget: int | None, scale: float, **where: int) -> None:
    if budget is not None:
        fig.add_hline(y=budget / scale, line=dict(color="#444", dash="dash", width=1.5),
                      annotation_text=f"budget {format_bytes(budget)}",
                      annotation_position="top left", **where)


def pareto_figure(info: ParetoInfo) -> go.Figure:
    """Mean Dice (or parameters) against peak memory; the front joined as a step line."""
    largest = _largest(*(g.peak_bytes for g in info.groups), [info.budget_bytes])
    scale, unit = unit_for(largest)
    fig = go.Figure()
    for group in info.groups:
        style = dict(GROUP_STYLE.get(group.kind, GROUP_STYLE["failed"]))
        front = group.kind == "front"
        fig.add_trace(go.Scatter(
            x=[b / scale for b in group.peak_bytes], y=list(group.y),
            name=f"{group.name} ({len(group.numbers)})", mode="lines+markers" if front else "markers",
            line=dict(shape="hv", color=style["color"], width=1.5) if front else None,
            marker=style, hovertext=list(group.hover), hoverinfo="text", customdata=list(group.numbers),
        ))
    if info.budget_bytes is not None:
        fig.add_vline(x=info.budget_bytes / scale, line=dict(color="#444", dash="dash", width=1.5),
                      annotation_text=f"budget {format_bytes(info.budget_bytes)}",
                      annotation_position="top right")
    if info.y_kind == "dice":
        title = "Pareto front: mean Dice vs peak memory (failed and over-budget trials at Dice 0)"
        fig.update_yaxes(range=[-0.04, 1.02])
    else:
        title = "Parameters vs peak memory (memory-only study)"
        fig.update_yaxes(rangemode="tozero")
    fig.update_xaxes(title_text=f"peak training memory ({unit})", range=[0, largest / scale * 1.06])
    fig.update_yaxes(title_text=info.y_label)
    return _layout(fig, title, height=520)


def _lines(fig: go.Figure, x: list, labels: list[str], series: tuple, scale: float, unit: str,
           what: str) -> None:
    for line in series:
        fig.add_trace(go.Scatter(
            x=x, y=[None if v is None else v / scale for v in line.values], name=line.name,
            mode="lines+markers", line=dict(color=EXECUTION_COLORS.get(line.name), width=2.5),
            marker=dict(size=8),
            hovertext=[f"{escape(line.name)}, {what} {escape(label)}: "
                       f"{format_bytes(v) if v is not None else 'n/a'}"
                       for label, v in zip(labels, line.values)], hoverinfo="text",
        ))


def depth_figure(info: DepthInfo) -> go.Figure:
    """Peak memory over blocks per level, one line per execution."""
    scale, unit = unit_for(_largest(*(s.values for s in info.series), [info.budget_bytes]))
    fig = go.Figure()
    _lines(fig, list(info.depths), [str(d) for d in info.depths], info.series, scale, unit, "depth")
    _budget_h(fig, info.budget_bytes, scale)
    fig.update_xaxes(title_text="blocks per level (encoder and decoder)", tickvals=list(info.depths))
    fig.update_yaxes(title_text=f"peak training memory ({unit})", rangemode="tozero")
    return _layout(fig, f"Memory vs depth: {info.network}, patch {patch_text(info.patch)}")


def patch_figure(info: PatchInfo) -> go.Figure:
    """Peak memory over the patch edge, one line per execution."""
    scale, unit = unit_for(_largest(*(s.values for s in info.series), [info.budget_bytes]))
    fig = go.Figure()
    _lines(fig, list(info.edges), list(info.labels), info.series, scale, unit, "patch")
    _budget_h(fig, info.budget_bytes, scale)
    fig.update_xaxes(title_text="patch edge (voxels per side; cube root of D·H·W)",
                     tickvals=list(info.edges), ticktext=list(info.labels), rangemode="tozero")
    fig.update_yaxes(title_text=f"peak training memory ({unit})", rangemode="tozero")
    return _layout(fig, f"Memory vs patch size: {info.network}")


def breakdown_figure(info: BreakdownInfo) -> go.Figure:
    """Stacked bars: memory at the peak by category, one bar per selected configuration."""
    scale, unit = unit_for(max((sum(b.categories) for b in info.bars), default=0))
    fig = go.Figure()
    labels = [bar.label for bar in info.bars]
    for i, category in enumerate(info.categories):
        values = [bar.categories[i] for bar in info.bars]
        fig.add_trace(go.Bar(
            x=labels, y=[v / scale for v in values], name=category,
            marker_color=CATEGORY_COLORS[i % len(CATEGORY_COLORS)],
            hovertext=[f"{escape(bar.words)}<br>{escape(category)}: {format_bytes(v)}"
                       for bar, v in zip(info.bars, values)],
            hoverinfo="text",
        ))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text=f"{unit} at the peak")
    return _layout(fig, "What the memory is made of at the peak")


def levels_figure(info: BreakdownInfo) -> go.Figure:
    """Grouped bars: saved activations per level at the end of forward, per execution."""
    scale, unit = unit_for(_largest(*(b.values for b in info.level_bars)))
    fig = go.Figure()
    for bars in info.level_bars:
        name = bars.label.rsplit(" ", 1)[-1]
        fig.add_trace(go.Bar(
            x=list(info.levels), y=[v / scale for v in bars.values], name=bars.label,
            marker_color=EXECUTION_COLORS.get(name),
            hovertext=[f"{escape(bars.label)}, {escape(level)}: {format_bytes(v)}" for level, v in
                       zip(info.levels, bars.values)], hoverinfo="text",
        ))
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category", title_text="level (encoder + decoder; stem and head at level 0)")
    fig.update_yaxes(title_text=f"saved activations ({unit})")
    return _layout(fig, "Activation bytes per level at the end of forward")


def timeline_figure(info: TimelineInfo) -> go.Figure:
    """Live bytes over one training step, one panel per execution, phases shaded."""
    rows = len(info.panels)
    top = max([p.peak_bytes for p in info.panels] + [max(p.reserved, default=0) for p in info.panels]
              + [info.budget_bytes or 0])
    scale, unit = unit_for(top)
    fig = make_subplots(rows=rows, cols=1, vertical_spacing=0.16,
                        subplot_titles=[f"{p.name}: peak {format_bytes(p.peak_bytes)} · {p.ops:,} ops"
                                        for p in info.panels])
    for row, panel in enumerate(info.panels, start=1):
        for start, end, phase in panel.spans:
            fig.add_vrect(x0=start, x1=end, fillcolor=PHASE_COLORS.get(phase, "rgba(0,0,0,0.05)"),
                          line_width=0, layer="below", row=row, col=1,
                          annotation_text=phase, annotation_position="top left",
                          annotation_font_size=11)
        fig.add_trace(go.Scatter(
            x=list(panel.x), y=[b / scale for b in panel.bytes], name=panel.name, mode="lines",
            line=dict(color=EXECUTION_COLORS.get(panel.name), width=1.5), fill="tozeroy",
            hovertemplate="op %{x}<br>%{y:.3f} " + unit + "<extra>" + panel.name + "</extra>",
        ), row=row, col=1)
        if panel.reserved:
            fig.add_trace(go.Scatter(
                x=list(panel.x), y=[b / scale for b in panel.reserved], name=f"{panel.name} reserved",
                mode="lines", line=dict(color=EXECUTION_COLORS.get(panel.name), width=1, dash="dot"),
                hovertemplate="op %{x}<br>reserved %{y:.3f} " + unit + " (allocator model)<extra>"
                              + panel.name + "</extra>",
            ), row=row, col=1)
        _budget_h(fig, info.budget_bytes, scale, row=row, col=1)
        fig.update_yaxes(title_text=f"live {unit}", range=[0, top / scale * 1.1], row=row, col=1)
        fig.update_xaxes(title_text="op in the training step", row=row, col=1)
    return _layout(fig, f"Memory over one training step (patch {patch_text(info.patch)}): "
                   f"reversible levels free their activations in forward and recompute them in backward",
                   height=300 * rows + 130, top=100)


def dice_figure(info: DiceInfo) -> go.Figure:
    """Dice per region for the Pareto-front trials."""
    fig = go.Figure()
    for name, values in (("WT", info.wt), ("TC", info.tc), ("ET", info.et), ("mean", info.mean)):
        fig.add_trace(go.Bar(
            x=list(info.labels), y=list(values), name=name, marker_color=REGION_COLORS[name],
            hovertext=[f"{escape(words)}<br>Dice {name} {v:.3f}" for words, v in zip(info.words, values)],
            hoverinfo="text",
        ))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="Pareto-front trial (lowest memory first)", type="category")
    fig.update_yaxes(title_text="Dice", range=[0, 1])
    return _layout(fig, "Dice per region (WT, TC, ET) on the Pareto front")
