"""The ``revprof`` Typer application; each command lives in its own module and registers here."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from revprof.cli._click_errors import ClickException, UsageError


class _OneLineErrors(TyperGroup):
    """The top-level command group, whose usage errors are one ``error:`` line.

    Click prints a usage error (an option value it cannot parse, an unknown option or command, a
    missing argument) as a usage line, a hint and a message box; revprof prints every bad input
    the same way: one line naming the value, on stderr, exit code 2.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False  # errors come back here as exceptions
        if not standalone_mode:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **kwargs)
        except UsageError as error:
            message = " ".join(error.format_message().split())
            if message:  # empty: a group called without a command, whose help was just shown
                hint = f" (see {error.ctx.command_path} --help)" if error.ctx is not None else ""
                print(f"error: {message}{hint}", file=sys.stderr)
            sys.exit(error.exit_code)
        except ClickException as error:
            print(f"error: {' '.join(error.format_message().split())}", file=sys.stderr)
            sys.exit(error.exit_code)
        except typer.Abort:
            print("aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="revprof",
    help="Memory profiling and architecture search for partially reversible 3D U-Nets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
)


def _show_version(value: bool) -> None:
    if value:
        from revprof import __version__

        typer.echo(f"revprof {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the revprof version and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, status lines or "
                                        "tables; errors, --json objects and the paths of written "
                                        "files still print.")] = False,
) -> None:
    """Memory profiling and architecture search for partially reversible 3D U-Nets."""
    from revprof.cli._common import set_quiet

    set_quiet(quiet)  # every invocation sets it (tests run several in one process)

# Modules with a ``register(app)`` function, in the order their commands appear in --help.
_COMMAND_MODULES = (
    "revprof.cli.model",
    "revprof.cli.measure",
    "revprof.cli.plan",
    "revprof.cli.data",
    "revprof.cli.evaluate",
    "revprof.cli.predict",
    "revprof.cli.sweep",
    "revprof.cli.export",
    "revprof.cli.report",
    "revprof.cli.store",
    "revprof.cli.bench",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _unwrap(text: str) -> str:
    """Help text with each paragraph on one line, so the terminal wraps it (not the source)."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _unwrap_help(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        text = info.help or (info.callback.__doc__ if info.callback else None)
        if text:
            info.help = _unwrap(text)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _unwrap_help(group.typer_instance)


_unwrap_help(app)


def main() -> None:
    """Console-script entry point (also ``python -m revprof``, which is named revprof too, so its
    usage lines and its completion script are the installed command's)."""
    app(prog_name="revprof")
