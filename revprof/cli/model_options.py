"""The ``--model`` options shared by ``model``, ``measure`` and ``plan``: any network by factory."""

from __future__ import annotations

from typing import Annotated

import typer

from revprof.cli.spec_options import SpecOptions, given
from revprof.errors import RevprofError
from revprof.nn.factory import ModelSpec, model_spec, parse_model_kwargs
from revprof.nn.presets import PRESETS
from revprof.spec import parse_input_shape

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

InputShape = Annotated[str | None, typer.Option(
    "--input", rich_help_panel=_PANEL,
    help="One sample's input for a --model network: C,H,W (2-D images, e.g. 3,86,86), C,D,H,W or "
         "C,L. Sets --in-channels and the patch.")]


def model_from_options(model: str | None, model_kwargs: str | None, in_channels: int | None,
                       patch_multiple: int | None, arch_options: SpecOptions,
                       input_shape: str | None = None) -> ModelSpec | None:
    """The :class:`ModelSpec` ``--model`` names, or ``None`` without ``--model``; ``--input``
    gives its input channels.

    Raises:
        RevprofError: ``--model`` together with architecture options, ``--input`` without
            ``--model`` or beside ``--in-channels``, a bad ``--input``, or as :func:`model_spec`.
    """
    if input_shape is not None:
        if model is None:
            raise RevprofError(f"--input {input_shape} sets the input of a --model network; revprof's "
                               f"own networks are 3-D with 4 channels: give --patch D,H,W instead")
        if in_channels is not None:
            raise RevprofError("--input gives the input channels (its first number); drop --in-channels")
        in_channels, _ = parse_input_shape(input_shape)
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


def input_patch(ctx: typer.Context, input_shape: str | None, patch: str | None,
                name: str = "patch") -> str | tuple[int, ...] | None:
    """The patch: the spatial sizes of ``--input`` (``(86, 86)``) when it is given, else ``patch``.

    Raises:
        RevprofError: ``--input`` together with an explicit ``--patch``, or a bad ``--input``.
    """
    if input_shape is None:
        return patch
    if given(ctx, name):
        raise RevprofError(f"--input {input_shape} gives the patch (its sizes after the channels); "
                           f"drop --{name}")
    return parse_input_shape(input_shape)[1]
