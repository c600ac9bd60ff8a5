"""Shared CLI plumbing: error reporting without tracebacks, and the console.

Both consoles print without rich markup and without emoji codes, so user text (a path, a study
or case name holding ``[space]``, ``[/x]`` or ``:ok:``) is printed as it is and can never break a
line. A line that wants styles passes ``markup=True`` and wraps every interpolated value in
:func:`escape` (the consoles' ``emoji=False`` keeps ``:ok:`` as it is there too). A progress bar
whose description holds user text shows it with :func:`description_column`.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import TextColumn

from revprof.cli._click_errors import ClickException
from revprof.errors import Choice, RevprofError, RevprofWarning, look_up
from revprof.redaction import redact_text

P = ParamSpec("P")
R = TypeVar("R")

PIPED_WIDTH = 200
"""Columns of output that goes to a file or a pipe (rich would cut tables to 80); ``COLUMNS``
still wins."""


def _console(stderr: bool = False) -> Console:
    out = Console(stderr=stderr, markup=False, emoji=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPED_WIDTH
    return out


console = _console()
err_console = _console(stderr=True)

__all__ = ["choice", "console", "description_column", "err_console", "escape", "fail",
           "handle_errors", "parameter"]


def description_column(style: str = "") -> TextColumn:
    """A progress column showing ``task.description`` as it is: a case or model name is never
    read as markup (``[b]``) or an emoji code (``:ok:``), which rich's default column does."""
    return TextColumn("{task.description}", style=style, markup=False)


def one_line(text: str) -> str:
    """``text`` as one printable line: line breaks become spaces, and any other control
    character in it (a user's file name may hold one) is shown as its escape, e.g. ``\\x1e``."""
    shown = "".join(c if c.isprintable() or c in "\n\r" else c.encode("unicode_escape").decode()
                    for c in text)
    return " ".join(shown.splitlines())


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on one line of stderr (any password in it masked) and return the
    exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(one_line(redact_text(message)))}", markup=True,
                      highlight=False, soft_wrap=True)
    return typer.Exit(code)


_show_warning = warnings.showwarning


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Print a :class:`RevprofWarning` as one ``warning: ...`` line; others as Python does."""
    if isinstance(message, RevprofWarning) or (isinstance(category, type) and
                                                issubclass(category, RevprofWarning)):
        err_console.print(f"[yellow]warning:[/] {escape(one_line(redact_text(str(message))))}", markup=True,
                          highlight=False, soft_wrap=True)
        return
    _show_warning(message, category, filename, lineno, file, line)


warnings.showwarning = _warning_line


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn :class:`RevprofError` into one line on stderr and exit status 1, and Ctrl-C into 130."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except RevprofError as error:
            raise fail(str(error)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", highlight=False)
            sys.stderr.flush()
            raise typer.Exit(130) from None

    return wrapper


def parameter(name: str, parse: Callable[[str], R]) -> Callable[[str | None], R | None]:
    """Wrap a library parser as a Typer ``callback`` that reports :class:`RevprofError` as a bad option."""

    def callback(value: str | None) -> R | None:
        if value is None:
            return None
        try:
            return parse(value)
        except RevprofError as error:
            raise typer.BadParameter(str(error), param_hint=name) from None

    return callback


def choice(name: str, choices: Iterable[Choice], *, normalize: Callable[[str], str] | None = None,
           usage: bool = False) -> Callable[[str], Choice]:
    """A Typer ``parser=`` for an option annotated with the ``Literal`` type of ``choices``.

    Typer reads the choices from the annotation (``--help`` lists them as ``<a|b|c>``, shell
    completion offers them); this parser gives a wrong value the library's own message
    (:func:`revprof.errors.look_up`: ``name``, the valid choices, the value and the closest
    choice), printed as one ``error:`` line with exit status 1, as when the library rejects it.
    With ``usage`` it is a usage error instead (exit status 2, ``Invalid value for --name``).
    ``normalize`` prepares the value first (e.g. ``str.upper`` for a case-insensitive choice).

    Example:
        >>> parse = choice("precision", ("fp32", "bf16", "fp16"))
        >>> parse("bf16")
        'bf16'
    """
    options = tuple(choices)

    def parse(value: str) -> Choice:
        try:
            return look_up(name, normalize(value) if normalize is not None else value, options)
        except RevprofError as error:
            if usage:
                raise typer.BadParameter(error.problem or str(error), param_hint=f"--{name}") from None
            raise ClickException(str(error)) from None

    return parse


#: Environment variable that gives ``--storage`` its default (a journal path or a database URL).
STORAGE_ENV = "REVPROF_STORAGE"


def storage_help(text: str) -> str:
    """``--storage`` help: ``text`` and the environment variable that sets its default."""
    return f"{text} Default: ${STORAGE_ENV} when set."


def shown_storage(storage: str) -> str:
    """A store string as revprof prints it: any password replaced (never echo a secret)."""
    from revprof.redaction import redact_url

    return redact_url(storage)


def set_quiet(on: bool = True) -> None:
    """``revprof --quiet``: progress, status and informational lines off (``console``); results
    printed with ``print``/``typer.echo`` (``--json``, paths) and errors (``err_console``) stay."""
    console.quiet = on
