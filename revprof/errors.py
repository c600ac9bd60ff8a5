"""The one exception type the library raises for problems a user can fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TypeVar

Choice = TypeVar("Choice", bound=str)


class RevprofError(Exception):
    """A problem with the user's input or environment, with an actionable one-line message.

    The CLI prints the message and exits with status 1, without a traceback. Any password in
    the message (a store URL, a driver's ``password=...``) is masked when the error is made.

    Attributes:
        field: the setting the problem is about (``"precision"``, ``"sampler.name"``), when one is.
        problem: what is wrong with it, without the field or the file (``"must be one of ..."``),
            so a caller can restate it under another name instead of rewriting the message.
    """

    def __init__(self, *args: object, field: str | None = None, problem: str | None = None) -> None:
        from revprof.redaction import redact_text

        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))
        self.field = field
        self.problem = redact_text(problem) if problem is not None else None


class RevprofWarning(UserWarning):
    """Something the user should know that does not stop the command (a skipped damaged line).

    The CLI prints it as one ``warning: ...`` line on stderr.
    """


def first_line(error: BaseException, *, with_type: bool = False) -> str:
    """The first line of ``error``'s message, or its type's name when the message is empty; with
    ``with_type``, the line is prefixed ``"TypeName: "`` (for errors from other libraries)."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return f"{type(error).__name__}: {lines[0]}" if with_type else lines[0]


def closest(value: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid choice, or ``""`` when none is close
    (or ``value`` is not text: a number or a list read from a file)."""
    if not isinstance(value, str):
        return ""
    match = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def look_up(name: str, value: str, choices: Iterable[Choice]) -> Choice:
    """Return ``value`` when it is one of ``choices``; otherwise raise a message naming the field.

    Raises:
        RevprofError: ``value`` is not a valid choice; the message lists the valid ones and
            suggests the closest.
    """
    options = list(choices)
    for option in options:
        if value == option:
            return option
    problem = f"must be one of {', '.join(options)}; got {value!r}{closest(value, options)}"
    raise RevprofError(f"{name} {problem}", field=name, problem=problem)
