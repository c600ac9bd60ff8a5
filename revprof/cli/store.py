"""``revprof store check|repair``: find and remove damaged lines of a journal store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from revprof.cli._common import console, handle_errors
from revprof.errors import RevprofError

store_app = typer.Typer(name="store", help="Check or repair a journal study store.",
                        no_args_is_help=True)

Journal = Annotated[str | None, typer.Argument(
    metavar="JOURNAL", help="The journal file (default .revprof/studies.journal).",
    show_default=False)]


def _path(journal: str | None, command: str) -> Path:
    """The journal file to work on; a database URL is refused (in one line, its password
    masked) before it is ever turned into a path."""
    from revprof.redaction import redact_url
    from revprof.sweep.storage import DEFAULT_JOURNAL

    if journal is None:
        return DEFAULT_JOURNAL
    if not journal.strip():
        raise RevprofError(f"store {command}: JOURNAL must not be empty; give a journal file such "
                           f"as {DEFAULT_JOURNAL}")
    if "://" in journal:
        raise RevprofError(f"store {command} works on journal files; {redact_url(journal)!r} is a "
                           f"URL, not a journal file path (a database keeps its records "
                           f"consistent itself)")
    return Path(journal)


@store_app.command("check")
@handle_errors
def check_command(journal: Journal = None) -> None:
    """Report lines that are not journal records, a torn last line and trials left RUNNING;
    exit status 1 when a line is damaged."""
    from revprof.sweep.journal import check_journal

    result = check_journal(_path(journal, "check"))
    for line in result.lines_of_text():
        console.print(line, highlight=False, soft_wrap=True)
    if not result.ok:
        raise RevprofError(result.summary())


@store_app.command("repair")
@handle_errors
def repair_command(journal: Journal = None) -> None:
    """Keep only the valid records of a journal (a backup copy is written first). Run it while
    no sweep uses the store."""
    from revprof.sweep.journal import repair_journal

    backup, removed = repair_journal(_path(journal, "repair"))
    console.print(f"backup: {backup}", highlight=False, soft_wrap=True)
    for number, reason in removed:
        console.print(f"removed line {number}: {reason}", highlight=False, soft_wrap=True)
    console.print(f"removed {len(removed)} line(s); kept every valid record", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``store`` command group to ``app``."""
    app.add_typer(store_app, name="store")
