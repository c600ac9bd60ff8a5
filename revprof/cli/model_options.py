"""The ``--model`` options shared by ``model``, ``measure`` and ``plan``: any network by factory."""

from __future__ import annotations

from typing import Annotated

import typer

from revprof.cli.spec_options import SpecOptions
from revprof.errors import RevprofError
from revprof.nn.factory import ModelSpec, model_spec, parse_model_kwargs
from revprof.nn.presets import PRESETS

_PANEL = "Any network (--model)"

Model = Annotated[str | None, typer.Option(
    "--model", rich_help_panel=_PANEL,
    help="A network by factory instead of --arch: PACKAGE.MODULE:FACTORY (imported, never "
         f"evaluated) or a preset: {', '.join(PRESETS)}.")]
ModelKwargs = Annotated[str | None, typer.Option(
    "--model-kwargs", rich_help_panel=_PANEL,
    help='Keyword arguments for the factory as a JSON object, e.g. \'{"init_filters": 16}\'.')]
InChannels = Annotated[int | None, typer.Option(
    "--in-channels", min=1, rich_help_panel=_PANEL,
    help="Input channels (default: the factory's in_channels, else its first convolution's).")]
PatchMultiple = Annotated[int | None, typer.Option(
    "--patch-multiple", min=1, rich_help_panel=_PANEL,
    help="Patch axes must be multiples of this power of two (default: the preset's, else 1).")]


def model_from_options(model: str | None, model_kwargs: str | None, in_channels: int | None,
                       patch_multiple: int | None, arch_options: SpecOptions) -> ModelSpec | None:
    """The :class:`ModelSpec` ``--model`` names, or ``None`` without ``--model``.

    Raises:
        RevprofError: ``--model`` together with architecture options, or as :func:`model_spec`.
    """
    if model is None:
        if model_kwargs is not None:
            raise RevprofError("--model-kwargs needs --model")
        return None
    given = [name for name, value in vars(arch_options).items()
             if value not in (None, False, 2.0, "revunet")]
    if given:
        raise RevprofError(f"--model builds its own network; drop the architecture options "
                           f"({', '.join('--' + g.replace('_', '-') for g in given)})")
    return model_spec(model, parse_model_kwargs(model_kwargs), in_channels=in_channels,
                      patch_multiple=patch_multiple)
