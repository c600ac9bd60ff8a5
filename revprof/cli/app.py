"""The ``revprof`` Typer application; each command lives in its own module and registers here."""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Annotated

import typer

app = typer.Typer(
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
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as error:  # a command not written yet
        if error.name != _name:
            raise
        continue
    _module.register(app)


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
    """Console-script entry point."""
    app()
