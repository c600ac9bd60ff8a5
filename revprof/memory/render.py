"""Rich tables for a :class:`MemoryReport`."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from revprof.memory.measure import MemoryReport
from revprof.units import format_bytes


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else ""


def report_tables(report: MemoryReport) -> Group:
    """The headline, the breakdown at the peak and activation bytes per network part."""
    head = Table(title=f"{report.spec.describe()} · patch {'x'.join(map(str, report.patch))} · "
                       f"batch {report.batch} · {report.precision}", show_header=False)
    head.add_column("what")
    head.add_column("value", justify="right")
    head.add_row("peak memory", f"[bold]{format_bytes(report.peak_bytes)}[/] ({report.peak_bytes:,} B)")
    if report.reserved_bytes is not None:
        head.add_row("peak reserved", format_bytes(report.reserved_bytes))
    head.add_row("peak reached in", f"{report.peak_phase} of step {report.peak_step + 1}")
    head.add_row("parameters", f"{report.params:,}")
    head.add_row("backend", f"{report.backend} on {report.device}")
    breakdown = Table(title="at the peak")
    breakdown.add_column("category")
    breakdown.add_column("bytes", justify="right")
    breakdown.add_column("share", justify="right")
    for category, size in report.breakdown.items():
        breakdown.add_row(category.replace("_", " "), format_bytes(size), _share(size, report.peak_bytes))
    parts = Table(title="saved activations per part (end of forward)")
    parts.add_column("part")
    parts.add_column("bytes", justify="right")
    for part, size in report.saved_after_forward.items():
        parts.add_row(part, format_bytes(size))
    return Group(head, breakdown, parts)
