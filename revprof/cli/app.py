"""The ``revprof`` Typer application; each command lives in its own module and registers here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="revprof",
    help="Memory profiling and architecture search for partially reversible 3D U-Nets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Modules with a ``register(app)`` function, in the order their commands appear in --help.
_COMMAND_MODULES = (
    "revprof.cli.model",
    "revprof.cli.measure",
    "revprof.cli.plan",
    "revprof.cli.data",
    "revprof.cli.evaluate",
    "revprof.cli.predict",
    "revprof.cli.sweep",
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


def main() -> None:
    """Console-script entry point."""
    app()
