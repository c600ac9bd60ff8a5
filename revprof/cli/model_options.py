"""The ``--model`` options shared by ``model``, ``measure`` and ``plan``: any network by factory."""

from __future__ import annotations

from typing import Annotated

import typer

from revprof import bounds
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
    help="Input channels of a --model network (default: the factory's in_channels, else its first "
         "convolution's); revprof's own networks read the 4 BraTS modalities.")]
PatchMultiple = Annotated[int | None, typer.Option(
    "--patch-multiple", min=1, rich_help_panel=_PANEL,
    help="Patch axes of a --model network must be multiples of this power of two (default: the "
         "preset's, else the smallest power of two its forward accepts).")]

InputShape = Annotated[str | None, typer.Option(
    "--input", rich_help_panel=_PANEL,
    help="One sample's input for a --model network: C,H,W (2-D images, e.g. 3,86,86), C,D,H,W or "
         "C,L. Sets --in-channels and the patch.")]


def model_from_options(model: str | None, model_kwargs: str | None, in_channels: int | None,
                       patch_multiple: int | None, arch_options: SpecOptions,
                       ctx: typer.Context | None = None,
                       input_shape: str | None = None) -> ModelSpec | None:
    """The :class:`ModelSpec` ``--model`` names, or ``None`` without ``--model``; ``--input``
    gives its input channels.

    Every option acts or is refused: ``--model-kwargs``, ``--in-channels`` and
    ``--patch-multiple`` act on a ``--model`` network only, the architecture options on
    revprof's own networks only. With ``ctx``, an architecture option counts as given when it
    was on the command line (``--growth 2.0`` too), else when it differs from its default.

    Raises:
        RevprofError: an option that does not apply to the kind of network, ``--in-channels``
            out of bounds, ``--input`` beside ``--in-channels``, a bad ``--input``, or as
            :func:`model_spec`.
    """
    if input_shape is not None:
        if model is None:
            raise RevprofError(f"--input {input_shape} sets the input of a --model network; revprof's "
                               f"own networks are 3-D with 4 channels: give --patch D,H,W instead")
        if in_channels is not None:
            raise RevprofError("--input gives the input channels (its first number); drop --in-channels")
        in_channels, _ = parse_input_shape(input_shape)
    if model is None:
        for name, value in (("--model-kwargs", model_kwargs), ("--in-channels", in_channels),
                            ("--patch-multiple", patch_multiple)):
            if value is not None:
                raise RevprofError(f"{name} applies to a --model network; revprof's own networks "
                                   f"(--arch) read the 4 BraTS modalities and take patches that "
                                   f"are multiples of 2**(levels-1); give --model or drop {name}")
        return None
    options = vars(arch_options)
    named = [name for name, value in options.items()
             if (given(ctx, name) if ctx is not None else value not in (None, False, 2.0, "revunet"))]
    if named:
        raise RevprofError(f"--model builds its own network; drop the architecture options "
                           f"({', '.join('--' + g.replace('_', '-') for g in named)})")
    if in_channels is not None:
        bounds.check_int("--in-channels", in_channels, 1, bounds.MAX_WIDTH)
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
