"""Click's exception classes, wherever this Typer keeps them.

Typer 0.2x vendors Click as its private ``typer._click`` and exports neither ``UsageError`` nor
``ClickException``; older Typer releases use the ``click`` package. revprof needs the two classes
only to print usage errors as one line (``cli/app.py``) and to reject a wrong choice with the
library's message and exit status (``cli/_common.choice``), so this is the one place that reaches
for either; ``tests/test_cli_conventions.py::test_usage_errors_are_one_line`` fails loudly if a
Typer release moves them.
"""

from __future__ import annotations

try:
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # Typer that depends on the click package
    from click.exceptions import ClickException, UsageError  # type: ignore[no-redef]

__all__ = ["ClickException", "UsageError"]
