"""``revprof report``: one interactive, offline Plotly HTML report of a study or a results file.

Loading (:mod:`~revprof.report.inputs`), data preparation (:mod:`~revprof.report.prepare`, one
typed object per figure, no plotly), figures (:mod:`~revprof.report.figures`) and the page
(:mod:`~revprof.report.html`) are separate steps.

Example:
    >>> write_report("quick", None, Path("reports/quick.html"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from revprof.report.html import render_html, write_atomic
from revprof.report.inputs import Source, load_results, study_source
from revprof.report.prepare import ReportData, prepare as prepare_report

__all__ = ["ReportData", "Source", "build_report", "load_results", "prepare_report", "render_html",
           "study_source", "write_report", "write_report_from_results"]


def build_report(source: Source, out: Path, *, date: str | None = None,
                 budget_bytes: int | None = None, reference: int | None = None) -> Path:
    """Prepare, render and atomically write the report of ``source`` to ``out``."""
    data = prepare_report(source, date=date, budget_bytes=budget_bytes, reference=reference)
    return write_atomic(Path(out), render_html(data))


def write_report(study_name: str, storage: str | None, out: Path, *, date: str | None = None,
                 budget_bytes: int | None = None, reference: int | None = None) -> Path:
    """Write the HTML report of an Optuna study and return its path.

    Args:
        study_name: the study.
        storage: ``sqlite:///...``, ``postgresql://...``, a ``.journal`` path, or ``None`` for
            the sweep's store ``.revprof/studies.journal``.
        out: the HTML file to write (folders are created).
        date: the header's date (default: the latest trial completion in the store).
        budget_bytes: overrides the study's memory budget.
        reference: trial number of the network the memory figures are about.

    Raises:
        RevprofError: an unknown study, an empty store, bad trial data; nothing is written then.
    """
    return build_report(study_source(study_name, storage), out, date=date, budget_bytes=budget_bytes,
                        reference=reference)


def write_report_from_results(path: Path, out: Path, *, date: str | None = None,
                              budget_bytes: int | None = None, reference: int | None = None) -> Path:
    """Write the HTML report of a results table (CSV, Parquet or JSON lines); see :func:`write_report`."""
    return build_report(load_results(Path(path)), out, date=date, budget_bytes=budget_bytes,
                        reference=reference)
